"""Run Paddle's transposed convolutions in a process of their own.

Importing paddle into a process that already holds TensorFlow, PyTorch and JAX
crashes inside paddle's import, so the tests hand their cases to this script:
``python paddle_reference.py cases.npz results.npz``. Each case ``i`` is
``x{i}``, ``w{i}`` and a JSON ``kwargs{i}``; the result is ``y{i}``, or
``error{i}`` when Paddle refused the call.
"""

import json
import sys

import numpy as np


def main(source: str, target: str) -> None:
    import paddle

    functions = {
        1: paddle.nn.functional.conv1d_transpose,
        2: paddle.nn.functional.conv2d_transpose,
        3: paddle.nn.functional.conv3d_transpose,
    }
    cases = np.load(source)
    results = {}
    for i in range(int(cases["count"])):
        x, w = cases[f"x{i}"], cases[f"w{i}"]
        kwargs = json.loads(str(cases[f"kwargs{i}"]))
        try:
            y = functions[w.ndim - 2](paddle.to_tensor(x), paddle.to_tensor(w), **kwargs)
            results[f"y{i}"] = y.numpy()
        except Exception as err:  # Paddle refused: recorded, and the test skips the case
            results[f"error{i}"] = np.array(str(err)[:200])
    np.savez(target, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
