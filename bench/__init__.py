"""The benchmark harness: ``python -m bench`` measures the funnel worker on one embedded broker.

Every number comes from one run on one machine, so the ratios between them (the worker against
a plain aiokafka consumer and against a naive Faust agent) cancel most of the machine's noise.
What each number means and how it is measured: ``docs/performance.md``.
"""
