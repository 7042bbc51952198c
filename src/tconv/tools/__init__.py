"""The tools built on the library: the ``tconv`` command (:mod:`.cli`), the tour of the seeds' worked
examples (:mod:`.tour`), the explanations (:mod:`.explain`), the translation of a layer between frameworks
(:mod:`.translate`), the figures (:mod:`.figures`), the benchmark (:mod:`.bench`) and the demos
(:mod:`.demo`)."""
