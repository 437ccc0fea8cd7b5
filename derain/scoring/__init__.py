"""Scores: how well a model removes rain, with a clean twin (:mod:`.metrics`, :mod:`.pairs`,
:mod:`.evaluate`) or without one (:mod:`.noreference`, :mod:`.evaluate_real`), and the HTML
report that shows both (:mod:`.report_html`)."""
