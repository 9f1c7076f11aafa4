"""Reports: one study's HTML page and Markdown summary, built from one ordered list of sections, and
one report over several studies.

- :mod:`~hplandscape.report.study_report` — :func:`make_report`: analyse, walk the sections, write
  ``index.html`` and ``summary.md``;
- :mod:`~hplandscape.report.sections` — the sections and their order (:data:`SECTIONS`);
  :mod:`~hplandscape.report.study_dir_sections` — those only a study directory gives;
  :mod:`~hplandscape.report.sparsity_section` — sparsity and gradient flow;
- :mod:`~hplandscape.report.page` — the section type and the pieces of every page (tables,
  figures, the HTML shell);
- :mod:`~hplandscape.report.multi_study` — one report over several studies.
"""
