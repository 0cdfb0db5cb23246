"""Quarterly assessment (考评): indicator systems and versions, inputs read from routing and surveys,
scoring rules, weights, significance, the run and its review list, and the scoring job.

Sits above ``routing`` and ``surveys`` and below the web shell ``app``; never imports the web stack.
"""
