"""The offline DynaCLR demo: synthetic experiments, training, embeddings, linear probes and a report.

Run it with ``dynaclr demo``; see :func:`dynaclr.demo.run.run_demo`.
"""
