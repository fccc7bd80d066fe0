"""Settings, read from the environment (DAYDREAM_*, DATABASE_URL, REDIS_URL).

Every setting has a default that works on one machine with nothing configured; the
README's table lists them all.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from services.core import keys

ROOT = Path(__file__).resolve().parent


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def instance_path() -> Path:
    return Path(os.environ.get("DAYDREAM_INSTANCE_PATH") or ROOT / "instance").resolve()


def web_processes() -> int:
    """DAYDREAM_WEB_PROCESSES, or one web process per core this process may run on (a
    Python process computes on one core at a time)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13+: honours the affinity mask
    try:
        cores = count() if count else len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = None
    return max(1, env_int("DAYDREAM_WEB_PROCESSES", cores or os.cpu_count() or 1))


def secret_key(folder: Path) -> str:
    """DAYDREAM_SECRET_KEY, or a random key kept in the instance folder so that
    sessions survive a restart and every process of one instance agrees on it."""
    if os.environ.get("DAYDREAM_SECRET_KEY"):
        return os.environ["DAYDREAM_SECRET_KEY"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret_key"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        try:  # a link never replaces: web processes starting together all keep the first key
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


REGISTRATION_MODES = ("open", "invite", "approval", "closed")


def registration_mode(value: str | None, open_: bool = True) -> str:
    """DAYDREAM_REGISTRATION, checked: an unknown mode stops the start with a message
    rather than leaving registration in a state nobody chose."""
    if value in (None, ""):
        return "open" if open_ else "closed"
    mode = value.strip().lower()
    if mode not in REGISTRATION_MODES:
        raise ValueError(f"DAYDREAM_REGISTRATION={value!r}: use one of {', '.join(REGISTRATION_MODES)}")
    return mode


MODERATION_PRESETS = ("standard", "strict")


def moderation_preset(value: str | None) -> str:
    """DAYDREAM_MODERATION_PRESET, checked: a new install's prompt rules preset
    (services/moderation/presets.py); an unknown one stops the start with a message."""
    preset = (value or "").strip().lower() or "standard"
    if preset not in MODERATION_PRESETS:
        raise ValueError(f"DAYDREAM_MODERATION_PRESET={value!r}: use one of {', '.join(MODERATION_PRESETS)}")
    return preset


def check_sso(config) -> None:
    """The single sign-on settings, checked at start: a half-configured provider, or
    passwords turned off with no provider, stops the start with a message rather than
    leaving nobody able to sign in."""
    if bool(config.OIDC_DISCOVERY_URL) != bool(config.OIDC_CLIENT_ID):
        raise ValueError("DAYDREAM_OIDC_DISCOVERY_URL and DAYDREAM_OIDC_CLIENT_ID go together: set both or neither")
    if config.OIDC_DISCOVERY_URL and "openid" not in config.OIDC_SCOPES.split():
        raise ValueError(f"DAYDREAM_OIDC_SCOPES={config.OIDC_SCOPES!r}: OpenID Connect needs the openid scope")
    if config.SSO_ONLY and not config.OIDC_DISCOVERY_URL:
        raise ValueError("DAYDREAM_SSO_ONLY=true needs a provider: set DAYDREAM_OIDC_DISCOVERY_URL and "
                         "DAYDREAM_OIDC_CLIENT_ID")


class Config:
    def __init__(self) -> None:
        self.INSTANCE_PATH = instance_path()
        self.SECRET_KEY = secret_key(self.INSTANCE_PATH)
        self.SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or (
            f"sqlite:///{self.INSTANCE_PATH / 'daydream.db'}"
        )
        if self.SQLALCHEMY_DATABASE_URI.startswith("postgres://"):
            self.SQLALCHEMY_DATABASE_URI = "postgresql://" + self.SQLALCHEMY_DATABASE_URI[11:]
        if self.SQLALCHEMY_DATABASE_URI.startswith("postgresql://"):
            self.SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://" + self.SQLALCHEMY_DATABASE_URI[13:]
        self.REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.IMAGES_PATH = Path(os.environ.get("DAYDREAM_IMAGES_PATH") or self.INSTANCE_PATH / "images")
        # A worker takes no task while the images folder's disk has less free space than
        # this (MB); its heartbeat says why (/healthz, Admin → Queue). 0: no check.
        self.MIN_FREE_MB = env_float("DAYDREAM_MIN_FREE_MB", 500.0)
        self.MODELS_PATH = Path(os.environ.get("DAYDREAM_MODELS_PATH") or self.INSTANCE_PATH / "models")
        # Links in the models folder that lead out of it are not followed (nor opened)
        # unless this is true; links that stay inside it always are.
        self.MODELS_FOLLOW_LINKS = env_bool("DAYDREAM_MODELS_FOLLOW_LINKS", False)
        # "demo" is the tiny built-in model; otherwise a hub id, a diffusers folder
        # or a single-file checkpoint (.safetensors / .ckpt).
        self.MODEL = os.environ.get("DAYDREAM_MODEL") or "demo"
        self.DEVICE = os.environ.get("DAYDREAM_DEVICE") or "auto"
        # Tiny demo models offered besides "demo" (SD 1.x): "all", or families from
        # sdxl, sd3, flux, comma-separated. Their LoRAs come with them.
        self.DEMO_MODELS = os.environ.get("DAYDREAM_DEMO_MODELS", "")
        # GPU memory: "high" keeps everything on the GPU; "low" offloads idle parts to the
        # CPU and decodes in tiles (SDXL on a 6 GB card); "auto" picks from free memory.
        self.VRAM = (os.environ.get("DAYDREAM_VRAM") or "auto").strip().lower()
        # Quantization on loading (worker/pipelines/quant.py; CUDA only): "auto" quantizes a
        # full-precision FLUX/SD3/… model to fp8 or NF4 when the memory plan says it does
        # not fit as it is; "nf4" or "fp8" always; "none" never.
        self.QUANT = (os.environ.get("DAYDREAM_QUANT") or "auto").strip().lower()
        self.MAX_LORAS = env_int("DAYDREAM_MAX_LORAS", 4)
        # Guides a task may take (issue 25): ControlNet units, and reference images.
        self.MAX_CONTROL = env_int("DAYDREAM_MAX_CONTROL", 3)
        self.MAX_REFERENCES = env_int("DAYDREAM_MAX_REFERENCES", 2)
        # Upscaler models run in tiles of at most this many input pixels a side, neighbours
        # sharing this many (blended so no seam shows): memory is one tile's, not the picture's.
        self.UPSCALE_TILE = max(32, env_int("DAYDREAM_UPSCALE_TILE", 512))
        self.UPSCALE_OVERLAP = max(0, env_int("DAYDREAM_UPSCALE_OVERLAP", 32))
        # Images per pipeline call (a task's samples and compatible tasks of other users,
        # worker/batching.py): unset = by free GPU memory, 1 on a CPU.
        max_batch = os.environ.get("DAYDREAM_MAX_BATCH", "").strip()
        self.MAX_BATCH = int(max_batch) if max_batch else None
        # torch.compile the UNet / transformer (channels_last for UNets), once per model and shape.
        self.COMPILE = env_bool("DAYDREAM_COMPILE", False)
        # Prompt-embedding cache entries per worker (worker/pipelines/prompt_cache.py); 0: off.
        self.PROMPT_CACHE = max(0, env_int("DAYDREAM_PROMPT_CACHE", 64))
        self.QUEUE_NAME = os.environ.get("DAYDREAM_QUEUE") or "daydream"
        self.JOB_TIMEOUT = env_int("DAYDREAM_JOB_TIMEOUT", 3600)
        # Liveness: every worker refreshes a heartbeat this often, and is taken for dead
        # when none came for HEARTBEAT_TTL seconds; the reconciler (one worker at a time)
        # runs every RECONCILE_INTERVAL seconds. Every Redis call from the web tier gives
        # up after REDIS_TIMEOUT seconds.
        self.HEARTBEAT_INTERVAL = env_float("DAYDREAM_HEARTBEAT_INTERVAL", 5.0)
        self.HEARTBEAT_TTL = env_float("DAYDREAM_HEARTBEAT_TTL", 3 * self.HEARTBEAT_INTERVAL)
        self.RECONCILE_INTERVAL = env_float("DAYDREAM_RECONCILE_INTERVAL", 15.0)
        self.REDIS_TIMEOUT = env_float("DAYDREAM_REDIS_TIMEOUT", 2.0)
        self.STARTING_TOKENS = env_int("DAYDREAM_STARTING_TOKENS", 20)
        # Subscription tiers (services/accounts/tiers.py): DAYDREAM_TIERS is a JSON list that
        # replaces the defaults (free, plus, pro); subscribing needs a payment provider.
        self.TIERS_JSON = os.environ.get("DAYDREAM_TIERS", "")
        self.DEFAULT_TIER = os.environ.get("DAYDREAM_DEFAULT_TIER") or "free"
        # The local clock of image caps and class budgets (services/accounts/periods.py):
        # "today" starts at midnight here. An IANA name such as Europe/London; unknown: UTC.
        self.TIMEZONE = os.environ.get("DAYDREAM_TIMEZONE") or "UTC"
        self.PAYMENT_PROVIDER = os.environ.get("DAYDREAM_PAYMENT_PROVIDER", "")
        # Rate limits (Flask-Limiter, counted in Redis): failed sign-ins per address and
        # per account, failed voucher redemptions per user.
        self.RATELIMIT_STORAGE_URI = ("redis+unix://" + self.REDIS_URL[len("unix://"):]
                                      if self.REDIS_URL.startswith("unix://") else self.REDIS_URL)
        self.RATELIMIT_KEY_PREFIX = keys.ratelimit_prefix(self.QUEUE_NAME)
        self.RATELIMIT_STRATEGY = "moving-window"
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_timeout": self.REDIS_TIMEOUT,
                                          "socket_connect_timeout": self.REDIS_TIMEOUT}
        self.RATELIMIT_ENABLED = env_bool("DAYDREAM_RATE_LIMITS", True)
        # Sign-in (services/core/ratelimit.py): an (account, address) pair may fail
        # SIGNIN_FREE_FAILURES times, then each try waits 1 s, doubling up to
        # SIGNIN_MAX_DELAY seconds. The per-address cap (spraying) and the per-account cap
        # (many addresses) refuse only pairs that never signed in. Fails closed (503).
        self.SIGNIN_LIMIT_IP = os.environ.get("DAYDREAM_SIGNIN_LIMIT_IP") or "30 per 15 minutes"
        self.SIGNIN_LIMIT_ACCOUNT = os.environ.get("DAYDREAM_SIGNIN_LIMIT_ACCOUNT") or "100 per hour"
        self.SIGNIN_FREE_FAILURES = env_int("DAYDREAM_SIGNIN_FREE_FAILURES", 5)
        self.SIGNIN_MAX_DELAY = env_int("DAYDREAM_SIGNIN_MAX_DELAY", 15 * 60)
        self.REDEEM_LIMIT = os.environ.get("DAYDREAM_REDEEM_LIMIT") or "10 per hour"
        # Staff actions that change accounts or mint tokens need a sign-in this recent.
        self.RECENT_AUTH_SECONDS = env_int("DAYDREAM_RECENT_AUTH_SECONDS", 15 * 60)
        # One-time account links (services/accounts/links.py, services/core/mail.py). With an
        # SMTP server, a From address and PUBLIC_URL (links in mail start with it, never
        # with a Host header a client sent), "Forgot password?" mails a reset link and a
        # new email address is confirmed by a link sent to it; staff reset links always work.
        self.SMTP_URL = os.environ.get("DAYDREAM_SMTP_URL", "")
        self.MAIL_FROM = os.environ.get("DAYDREAM_MAIL_FROM", "")
        self.SMTP_TIMEOUT = env_float("DAYDREAM_SMTP_TIMEOUT", 10.0)
        self.PUBLIC_URL = os.environ.get("DAYDREAM_PUBLIC_URL", "")
        self.RESET_TTL = env_int("DAYDREAM_RESET_TTL", 24 * 3600)
        self.RESET_MAIL_TTL = env_int("DAYDREAM_RESET_MAIL_TTL", 3600)
        self.EMAIL_CONFIRM_TTL = env_int("DAYDREAM_EMAIL_CONFIRM_TTL", 24 * 3600)
        self.RESET_LIMIT_IP = os.environ.get("DAYDREAM_RESET_LIMIT_IP") or "10 per hour"
        self.RESET_LIMIT_ACCOUNT = os.environ.get("DAYDREAM_RESET_LIMIT_ACCOUNT") or "3 per hour"
        self.STAFF_FREE = env_bool("DAYDREAM_STAFF_FREE", True)
        # Who may register (services/accounts/users.py): "open" (anyone), "invite" (with an
        # unredeemed voucher code from Admin -> Vouchers), "approval" (the account waits for
        # staff in Admin -> Users) or "closed". DAYDREAM_REGISTRATION_OPEN=false, the older
        # setting, means "closed".
        self.REGISTRATION = registration_mode(os.environ.get("DAYDREAM_REGISTRATION"),
                                              env_bool("DAYDREAM_REGISTRATION_OPEN", True))
        # New accounts per address and per network (/24 of IPv4, /64 of IPv6), counted in
        # Redis (services/core/ratelimit.py); 429 with Retry-After when used up.
        self.REGISTER_LIMIT_IP = os.environ.get("DAYDREAM_REGISTER_LIMIT_IP") or "20 per hour"
        self.REGISTER_LIMIT_NETWORK = os.environ.get("DAYDREAM_REGISTER_LIMIT_NETWORK") or "50 per hour"
        # Single sign-on with OpenID Connect (services/accounts/sso.py): the provider's
        # discovery document, this server's client id and secret there, the button's label
        # ("Sign in with <name>"), the scopes asked for, the claim that lists the person's
        # groups (classes join from it) and the group that makes an account staff (unset:
        # none). SSO_ONLY turns passwords off except for the staff accounts named in
        # SSO_BREAK_GLASS (comma-separated usernames).
        self.OIDC_DISCOVERY_URL = os.environ.get("DAYDREAM_OIDC_DISCOVERY_URL", "").strip()
        self.OIDC_CLIENT_ID = os.environ.get("DAYDREAM_OIDC_CLIENT_ID", "").strip()
        self.OIDC_CLIENT_SECRET = os.environ.get("DAYDREAM_OIDC_CLIENT_SECRET", "")
        self.OIDC_NAME = os.environ.get("DAYDREAM_OIDC_NAME", "").strip() or "school account"
        self.OIDC_SCOPES = os.environ.get("DAYDREAM_OIDC_SCOPES", "").strip() or "openid email profile"
        self.OIDC_GROUPS_CLAIM = os.environ.get("DAYDREAM_OIDC_GROUPS_CLAIM", "").strip() or "groups"
        self.OIDC_STAFF_GROUP = os.environ.get("DAYDREAM_OIDC_STAFF_GROUP", "").strip()
        self.SSO_ONLY = env_bool("DAYDREAM_SSO_ONLY", False)
        self.SSO_BREAK_GLASS = [name.strip() for name in os.environ.get("DAYDREAM_SSO_BREAK_GLASS", "").split(",")
                                if name.strip()]
        check_sso(self)
        # The prompt rules preset of a new install: "standard" or "strict" (for schools).
        # Staff change it later (first-run setup, Admin -> Moderation); the database's wins.
        self.MODERATION_PRESET = moderation_preset(os.environ.get("DAYDREAM_MODERATION_PRESET"))
        self.LIMITS = {
            "user": {
                "max_side": env_int("DAYDREAM_MAX_SIDE", 768),
                "max_pixels": env_int("DAYDREAM_MAX_PIXELS", 768 * 768),
                "max_samples": env_int("DAYDREAM_MAX_SAMPLES", 4),
            },
            "staff": {
                "max_side": env_int("DAYDREAM_STAFF_MAX_SIDE", 1024),
                "max_pixels": env_int("DAYDREAM_STAFF_MAX_PIXELS", 1024 * 1024),
                "max_samples": env_int("DAYDREAM_STAFF_MAX_SAMPLES", 8),
            },
        }
        self.PROGRESS_HZ = env_int("DAYDREAM_PROGRESS_HZ", 10)
        self.PREVIEWS = env_bool("DAYDREAM_PREVIEWS", True)
        self.PREVIEW_HZ = env_int("DAYDREAM_PREVIEW_HZ", 4)
        # The queue: at most this many queued tasks in all, and per user.
        self.QUEUE_LIMIT = env_int("DAYDREAM_QUEUE_LIMIT", 100)
        self.USER_QUEUE_LIMIT = env_int("DAYDREAM_USER_QUEUE_LIMIT", 3)
        # A worker may run a task for its loaded model before a fairer one for another
        # model, within one round of the round-robin, unless that one waited this long.
        self.AFFINITY_WAIT = env_int("DAYDREAM_AFFINITY_WAIT", 60)
        self.CANCEL_ON_LEAVE_GRACE = env_int("DAYDREAM_CANCEL_ON_LEAVE_GRACE", 15)
        self.MAX_UPLOAD_PIXELS = env_int("DAYDREAM_MAX_UPLOAD_PIXELS", 4096 * 4096)
        # Uploads are decoded within a memory budget (services/generation/uploads.py): at most
        # UPLOAD_DECODERS at once, each at most UPLOAD_DECODE_BYTES of decoded pixels
        # (checked from the header); an upload that waits UPLOAD_WAIT seconds for a
        # decoder is answered 503 with Retry-After.
        self.UPLOAD_DECODERS = max(1, env_int("DAYDREAM_UPLOAD_DECODERS", 2))
        self.UPLOAD_DECODE_BYTES = env_int("DAYDREAM_UPLOAD_DECODE_BYTES", 4096 * 4096 * 4)
        self.UPLOAD_WAIT = env_float("DAYDREAM_UPLOAD_WAIT", 10.0)
        # Control map previews (POST /api/v1/control/detect): how many one user may ask for,
        # and the seconds an annotator's child process may take for one.
        self.DETECT_LIMIT = os.environ.get("DAYDREAM_DETECT_LIMIT") or "120 per minute"
        self.DETECT_TIMEOUT = env_float("DAYDREAM_DETECT_TIMEOUT", 60.0)
        # The A1111 / OpenAI compatibility APIs hold a request until its task ends, at most
        # this many seconds (then the task is canceled and refunded; 504).
        self.COMPAT_TIMEOUT = env_float("DAYDREAM_COMPAT_TIMEOUT", 600.0)
        # ZIP archives: built by the archive worker (qarchiver.py) from a queue of their
        # own, kept in a folder of their own, deleted this many seconds after they are ready.
        self.ARCHIVES_PATH = Path(os.environ.get("DAYDREAM_ARCHIVES_PATH") or self.INSTANCE_PATH / "archives")
        self.ARCHIVE_QUEUE_NAME = os.environ.get("DAYDREAM_ARCHIVE_QUEUE") or keys.archive_queue(self.QUEUE_NAME)
        self.ARCHIVE_TTL = env_int("DAYDREAM_ARCHIVE_TTL", 24 * 3600)
        self.ARCHIVE_USER_LIMIT = env_int("DAYDREAM_ARCHIVE_USER_LIMIT", 3)
        self.ARCHIVE_JOB_TIMEOUT = env_int("DAYDREAM_ARCHIVE_JOB_TIMEOUT", 6 * 3600)
        # Model installs from Admin → Models (services/generation/installs.py), run by the
        # archive worker. Only https, only public addresses, unless the host is named here
        # (comma list, e.g. a hub mirror on the local network). The hub's address, extra CA
        # certificates to trust (a mirror's own), and how a transient failure (a cut
        # connection, 5xx, 429) is tried again: more tries in a row, the first wait (it
        # doubles), the longest wait (a server's Retry-After included).
        self.INSTALL_ALLOW_HOSTS = os.environ.get("DAYDREAM_INSTALL_ALLOW_HOSTS") or ""
        self.HF_ENDPOINT = (os.environ.get("DAYDREAM_HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        self.INSTALL_CA_BUNDLE = os.environ.get("DAYDREAM_INSTALL_CA_BUNDLE") or None
        self.INSTALL_RETRIES = env_int("DAYDREAM_INSTALL_RETRIES", 3)
        self.INSTALL_BACKOFF = env_float("DAYDREAM_INSTALL_BACKOFF", 2.0)
        self.INSTALL_MAX_WAIT = env_float("DAYDREAM_INSTALL_MAX_WAIT", 60.0)
        self.INSTALL_JOB_TIMEOUT = env_int("DAYDREAM_INSTALL_JOB_TIMEOUT", 12 * 3600)
        # Finished model jobs (installs, conversions, merges) are kept this many days, then
        # the archive workers' reconciler deletes their rows (0: kept for ever).
        self.MODEL_JOBS_KEEP_DAYS = env_float("DAYDREAM_MODEL_JOBS_KEEP_DAYS", 30.0)
        # The public showcase (/gallery): featured images plus the files dropped here.
        self.SHOWCASE_PATH = Path(os.environ.get("DAYDREAM_SHOWCASE_PATH") or self.INSTANCE_PATH / "showcase")
        # The web server (serve.py): this many gunicorn processes (default: one per core),
        # each with DAYDREAM_WEB_THREADS threads. Socket.IO takes WebSocket connections only,
        # so any process can hold any connection; events reach all of them through Redis.
        self.WEB_PROCESSES = web_processes()
        # Moderation (services/moderation/): the image check run by the worker on every
        # image, "off", "flag" (held for staff review) or "block" (deleted and refunded),
        # with an image-classification model folder in SAFETY_PATH.
        self.SAFETY = (os.environ.get("DAYDREAM_SAFETY") or "off").strip().lower()
        self.SAFETY_PATH = Path(os.environ.get("DAYDREAM_SAFETY_PATH") or self.MODELS_PATH / "safety")
        # An image is unsafe when the classifier's probabilities of these labels (its
        # id2label names, case-insensitive) add up to SAFETY_THRESHOLD or more; a worker
        # without its classifier tries to load it again every SAFETY_RETRY seconds.
        self.SAFETY_LABELS = [w.strip().lower() for w in (os.environ.get("DAYDREAM_SAFETY_LABELS")
                              or "nsfw,porn,hentai,sexy,explicit,unsafe").split(",") if w.strip()]
        self.SAFETY_THRESHOLD = env_float("DAYDREAM_SAFETY_THRESHOLD", 0.5)
        self.SAFETY_RETRY = env_float("DAYDREAM_SAFETY_RETRY", 30.0)
        # Showcase reports (services/moderation/reports.py): new reports per user.
        self.REPORT_LIMIT = os.environ.get("DAYDREAM_REPORT_LIMIT") or "20 per hour"
        # GET /metrics: this bearer token, or a signed-in staff account.
        self.METRICS_TOKEN = os.environ.get("DAYDREAM_METRICS_TOKEN") or ""
        # Behind a reverse proxy: how many proxies to trust (a number), or their addresses
        # (comma-separated); the client's address and scheme come from X-Forwarded-*.
        self.TRUSTED_PROXIES = (os.environ.get("DAYDREAM_TRUSTED_PROXIES") or "").strip()
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = env_bool("DAYDREAM_SECURE_COOKIES", False)
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.MAX_CONTENT_LENGTH = env_int("DAYDREAM_MAX_UPLOAD_BYTES", 16 * 1024 * 1024)
        self.SQLALCHEMY_ENGINE_OPTIONS = (
            {"connect_args": {"timeout": 30}}
            if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite")
            else {"pool_pre_ping": True}
        )
        self.WTF_CSRF_TIME_LIMIT = None
        self.TESTING = False
