"""Configuration, read once from the environment and passed down explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lacak.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
PROVIDERS = ("simulator", "fleet", "gosend", "grab_express", "borzo")
SERVICES = ("gosend", "grab_express", "borzo")


class _Env:
    """Typed reads of one environment mapping, with the variable named in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, default)

    def opt(self, name: str) -> str | None:
        return self.env.get(name) or None

    def num(self, name: str, default: float) -> float:
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        return default if raw is None or raw == "" else raw.lower() in _TRUE


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The built-in courier simulator (the default provider)."""

    speed: float = 10.0  # simulated seconds per real second
    seed: int = 0
    find_delay: float = 20.0  # simulated seconds to find a driver (mean)
    position_every: float = 10.0  # simulated seconds between positions
    city_kmh: float = 22.0
    no_driver_rate: float = 0.0
    cancel_rate: float = 0.0
    return_rate: float = 0.0
    hold_rate: float = 0.0

    @classmethod
    def from_env(cls, e: _Env) -> SimSettings:
        return cls(
            speed=max(0.01, e.num("LACAK_SIM_SPEED", 10.0)),
            seed=int(e.num("LACAK_SIM_SEED", 0)),
            find_delay=e.num("LACAK_SIM_FIND_DELAY", 20.0),
            position_every=max(1.0, e.num("LACAK_SIM_POSITION_EVERY", 10.0)),
            city_kmh=max(1.0, e.num("LACAK_SIM_CITY_KMH", 22.0)),
            no_driver_rate=e.num("LACAK_SIM_NO_DRIVER_RATE", 0.0),
            cancel_rate=e.num("LACAK_SIM_CANCEL_RATE", 0.0),
            return_rate=e.num("LACAK_SIM_RETURN_RATE", 0.0),
            hold_rate=e.num("LACAK_SIM_HOLD_RATE", 0.0),
        )


@dataclass(frozen=True, slots=True)
class CourierSettings:
    """Which provider carries each service, and the real couriers' endpoints and secrets."""

    providers: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SERVICES, "simulator"))
    timeout: float = 10.0
    book_attempts: int = 5
    gosend_base_url: str = "https://integration-kilat-api.gojekapi.com"
    gosend_client_id: str | None = None
    gosend_pass_key: str | None = field(default=None, repr=False)
    gosend_callback_header: str = "Authorization"
    gosend_callback_token: str | None = field(default=None, repr=False)
    grab_base_url: str = "https://partner-api.grab.com/grab-express-sandbox"
    grab_token_url: str = "https://partner-api.grab.com/grabid/v1/oauth2/token"  # noqa: S105  (a URL, not a secret)
    grab_client_id: str | None = None
    grab_client_secret: str | None = field(default=None, repr=False)
    grab_callback_token: str | None = field(default=None, repr=False)
    borzo_base_url: str = "https://robotapitest-id.borzodelivery.com/api/business/1.6"
    borzo_auth_token: str | None = field(default=None, repr=False)
    borzo_callback_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, e: _Env) -> CourierSettings:
        providers = {}
        for service in SERVICES:
            name = f"LACAK_PROVIDER_{service.upper()}"
            providers[service] = e.text(name, "simulator")
            if providers[service] not in PROVIDERS:
                raise ConfigError(f"{name} must be one of {', '.join(PROVIDERS)}")
        d = cls()
        return cls(
            providers=providers,
            timeout=e.num("LACAK_COURIER_TIMEOUT", 10.0),
            book_attempts=int(e.num("LACAK_COURIER_BOOK_ATTEMPTS", 5)),
            gosend_base_url=e.text("LACAK_GOSEND_BASE_URL", d.gosend_base_url),
            gosend_client_id=e.opt("LACAK_GOSEND_CLIENT_ID"),
            gosend_pass_key=e.opt("LACAK_GOSEND_PASS_KEY"),
            gosend_callback_header=e.text("LACAK_GOSEND_CALLBACK_HEADER", "Authorization"),
            gosend_callback_token=e.opt("LACAK_GOSEND_CALLBACK_TOKEN"),
            grab_base_url=e.text("LACAK_GRAB_BASE_URL", d.grab_base_url),
            grab_token_url=e.text("LACAK_GRAB_TOKEN_URL", d.grab_token_url),
            grab_client_id=e.opt("LACAK_GRAB_CLIENT_ID"),
            grab_client_secret=e.opt("LACAK_GRAB_CLIENT_SECRET"),
            grab_callback_token=e.opt("LACAK_GRAB_CALLBACK_TOKEN"),
            borzo_base_url=e.text("LACAK_BORZO_BASE_URL", d.borzo_base_url),
            borzo_auth_token=e.opt("LACAK_BORZO_AUTH_TOKEN"),
            borzo_callback_secret=e.opt("LACAK_BORZO_CALLBACK_SECRET"),
        )


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Outbound webhook delivery (webhooks.md)."""

    run: bool = True  # serve also dispatches webhooks (`lacak worker` always does)
    timeout: float = 15.0
    concurrency: int = 100  # sends in flight per process
    per_endpoint: int = 10  # sends in flight per merchant endpoint per process
    lease: float = 60.0  # a claimed delivery is someone else's after this; > timeout
    retry_scale: float = 1.0  # divides every retry delay: tests compress hours into seconds
    disable_after_hours: float = 24.0
    rotation_overlap_hours: float = 24.0
    # Seconds between looks for due work when nothing woke the dispatcher. On PostgreSQL
    # NOTIFY wakes it at once, so 1 s; on SQLite another process's changes are only seen by
    # looking, so 0.1 s (one indexed read).
    poll: float | None = None

    def poll_interval(self, sqlite: bool) -> float:
        return self.poll if self.poll is not None else (0.1 if sqlite else 1.0)

    @classmethod
    def from_env(cls, e: _Env) -> WebhookSettings:
        timeout = max(0.1, e.num("LACAK_WEBHOOK_TIMEOUT", 15.0))
        return cls(
            run=e.flag("LACAK_RUN_WEBHOOKS", True),
            timeout=timeout,
            concurrency=max(1, int(e.num("LACAK_WEBHOOK_CONCURRENCY", 100))),
            per_endpoint=max(1, int(e.num("LACAK_WEBHOOK_PER_ENDPOINT", 10))),
            # Never shorter than a request can take, or a live send would be taken over.
            lease=max(timeout + 5.0, e.num("LACAK_WEBHOOK_LEASE", timeout + 45.0)),
            retry_scale=max(1e-3, e.num("LACAK_WEBHOOK_RETRY_SCALE", 1.0)),
            disable_after_hours=max(0.0, e.num("LACAK_WEBHOOK_DISABLE_AFTER_HOURS", 24.0)),
            rotation_overlap_hours=max(0.0, e.num("LACAK_WEBHOOK_ROTATION_OVERLAP_HOURS", 24.0)),
            poll=max(0.01, e.num("LACAK_WEBHOOK_POLL", 0)) if e.opt("LACAK_WEBHOOK_POLL") else None,
        )


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """The public live-tracking page (`/t/{token}`)."""

    ttl_hours: float = 24.0  # a link works this long after the order's terminal state
    tiles_url: str | None = None  # e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; None: SVG map
    tiles_attribution: str = ""
    rate_per_minute: float = 120.0  # page, state and stream requests per client IP
    burst: float = 60.0
    max_streams: int = 10_000  # open event streams per process; more get a 503 and poll
    streams_per_client: int = 50  # open event streams per client address (a NAT holds many homes)
    heartbeat: float = 15.0  # seconds between SSE comments, under every proxy's idle timeout
    poll: float = 2.0  # seconds between looks at watched orders (positions, missed changes)

    @classmethod
    def from_env(cls, e: _Env) -> LiveSettings:
        tiles = e.opt("LACAK_MAP_TILES_URL")
        if tiles and not (tiles.startswith(("https://", "http://")) and "{z}" in tiles):
            raise ConfigError("LACAK_MAP_TILES_URL must be an http(s) URL template with {z}, {x} and {y}")
        return cls(
            ttl_hours=max(0.0, e.num("LACAK_LIVE_TTL_HOURS", 24.0)),
            tiles_url=tiles,
            tiles_attribution=e.text("LACAK_MAP_TILES_ATTRIBUTION", "© OpenStreetMap contributors"),
            rate_per_minute=max(1.0, e.num("LACAK_LIVE_RATE_PER_MINUTE", 120.0)),
            burst=max(1.0, e.num("LACAK_LIVE_BURST", 60.0)),
            max_streams=max(1, int(e.num("LACAK_LIVE_MAX_STREAMS", 10_000))),
            streams_per_client=max(1, int(e.num("LACAK_LIVE_STREAMS_PER_CLIENT", 50))),
            heartbeat=max(0.05, e.num("LACAK_LIVE_HEARTBEAT", 15.0)),
            poll=max(0.05, e.num("LACAK_LIVE_POLL", 2.0)),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("lacak-data")
    database_url: str = ""
    secret_key: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    tariff_file: Path | None = None
    key_cache_ttl: float = 5.0
    webhook_allow_private: bool = False
    db_pool_size: int = 10
    log_level: str = "INFO"
    access_log: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    forwarded_allow_ips: str | None = None  # proxies whose X-Forwarded-For is believed
    run_tasks: bool = True  # serve also runs the task loop (simulator, courier bookings)
    task_lease: float = 60.0  # seconds a claimed task is held before another process may take it
    sim: SimSettings = field(default_factory=SimSettings)
    couriers: CourierSettings = field(default_factory=CourierSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite:")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'lacak.db'}"

    @property
    def base_url(self) -> str:
        """Where lacak is reachable from outside (driver photos, links)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = _Env(os.environ if env is None else env)
        url = e.text("LACAK_DATABASE_URL")
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("LACAK_DATABASE_URL must start with sqlite:/// or postgresql://")
        tariff = e.opt("LACAK_TARIFF_FILE")
        return cls(
            data_dir=Path(e.text("LACAK_DATA_DIR", "lacak-data")),
            database_url=url,
            secret_key=e.opt("LACAK_SECRET_KEY"),
            admin_token=e.opt("LACAK_ADMIN_TOKEN"),
            tariff_file=Path(tariff) if tariff else None,
            key_cache_ttl=e.num("LACAK_KEY_CACHE_TTL", 5.0),
            webhook_allow_private=e.flag("LACAK_WEBHOOK_ALLOW_PRIVATE", False),
            db_pool_size=int(e.num("LACAK_DB_POOL_SIZE", 10)),
            log_level=e.text("LACAK_LOG_LEVEL", "INFO").upper(),
            access_log=e.flag("LACAK_ACCESS_LOG", True),
            host=e.text("LACAK_HOST", "127.0.0.1"),
            port=int(e.num("LACAK_PORT", 8080)),
            public_url=e.opt("LACAK_PUBLIC_URL"),
            forwarded_allow_ips=e.opt("LACAK_FORWARDED_ALLOW_IPS"),
            run_tasks=e.flag("LACAK_RUN_TASKS", True),
            task_lease=max(1.0, e.num("LACAK_TASK_LEASE", 60.0)),
            sim=SimSettings.from_env(e),
            couriers=CourierSettings.from_env(e),
            webhooks=WebhookSettings.from_env(e),
            live=LiveSettings.from_env(e),
        )
