"""Moderation: prompt rules staff keep and the normalized forms of a prompt they are
matched against (rules.py, normalize.py), staff review of the images the image check
held (review.py), and reports of showcase pictures (reports.py)."""
