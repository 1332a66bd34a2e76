"""The report of a job: its document model, its plots, its outline and the homework's text.

Generic (a job's report can reuse them):

- :mod:`report.document`: a report as a list of blocks (headings, paragraphs,
  equations, tables, figures), rendered to Markdown and to a PDF with
  matplotlib alone (mathtext, no TeX installation);
- :mod:`report.plots`: the figures (matplotlib, Agg backend);
- :mod:`report.outline`: a report as an outline whose slots the experiments
  of a registry fill (each names its slot in its section).

The homework's report (``scripts/homework.py``):

- :mod:`report.content`: its outline and the parts that are not one experiment's;
- :mod:`report.sections`: how each kind of experiment is presented;
- :mod:`report.derivations`: the derivations, with this run's checks;
- :mod:`report.numbers`: how numbers are written.

``fgraph`` never imports matplotlib or tqdm.
"""
