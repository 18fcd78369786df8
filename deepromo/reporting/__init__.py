"""Reporting: plots and the Markdown/HTML report renderer."""
