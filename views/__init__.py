"""The web tier's blueprints, thin: parse, call one service, answer. Pages: public.py
(/, /docs, the showcase at /gallery, /healthz), auth.py (register, sign in and out, the
first-run link), reauth.py (recent sign-in), studio.py, gallery.py (/images), account.py,
and the staff pages (admin/, /admin); who may open a page is checked at its blueprint
(access.py). The JSON API (api/, /api/v1), the compatibility APIs (compat/: /sdapi/v1,
/v1), /metrics (metrics.py), Socket.IO (sockets.py), and the one error answer (errors.py)."""
