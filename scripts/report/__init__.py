"""Helpers of ``scripts/homework.py``: the report's document model, its plots and its text.

- :mod:`report.document`: a report as a list of blocks (headings, paragraphs,
  equations, tables, figures), rendered to Markdown and to a PDF with
  matplotlib alone (mathtext, no TeX installation).
- :mod:`report.plots`: the figures (matplotlib, Agg backend).
- :mod:`report.content`: the report's text, built from the results.

Only the homework script imports this package; ``fgraph`` never imports
matplotlib or tqdm.
"""
