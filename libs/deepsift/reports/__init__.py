"""The daily moderation report: one self-contained HTML page per scan date, recorded in ``reports``.

:mod:`~deepsift.reports.data` reads what the page shows from the tables, :mod:`~deepsift.reports.charts`
draws its charts as inline SVG, :mod:`~deepsift.reports.render` fills the template (autoescaped), and
:mod:`~deepsift.reports.daily` writes the file and its ``reports`` row.
"""
