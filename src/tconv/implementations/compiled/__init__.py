"""The compiled NumPy path (numba kernels around BLAS products; NumPy arrays of rank <= 3).

==================  =====================================================================================
``algorithms``      the algorithm objects, their support predicates and costs
``transposed``      the transposed convolutions (``jit_gemm``, ``jit_direct``, ``jit_pixels``, ``jit_patches``)
``im2col``          the im2col, the convolution, and both directions' gradients
``phases``          ``jit_phases``: a strided transposed convolution as one stride-1 convolution per phase
``geometry``        axes padded to 3-D, grouped views, gather tables, cropped-tap runs
``schedule``        chunks, and ``team_threads``: the one decision whether a call runs on the thread team
``team``            the thread team that runs a call's chunks
``machine``         this machine's product rate for the cost model (measured once, kept on disk)
``workspace``       buffers reused between calls; partial sums a bin of work
``kernels``         the numba kernels (compiled on first use)
``direct_conv``     the direct convolution at any stride (``jit_direct`` on a convolution): phases, kernel, cost
``optimizer``       Adam's update in one pass (:class:`tconv.nn.Adam`'s step)
``transpose``       transposing copies in tiles (a channels-last array as its channels-first matrix and back)
==================  =====================================================================================
"""
