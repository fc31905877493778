"""Configuration, read once from the environment and passed down explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lacak.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}


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

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite:")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'lacak.db'}"

    @property
    def sqlite_path(self) -> Path:
        url = self.resolved_database_url
        if not url.startswith("sqlite:///"):
            raise ConfigError(f"not a sqlite URL: {url}")
        return Path(url.removeprefix("sqlite:///"))

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]  # dataclasses.replace is untyped per field

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from None

        url = env.get("LACAK_DATABASE_URL", "")
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("LACAK_DATABASE_URL must start with sqlite:/// or postgresql://")
        tariff = env.get("LACAK_TARIFF_FILE")
        return cls(
            data_dir=Path(env.get("LACAK_DATA_DIR", "lacak-data")),
            database_url=url,
            secret_key=env.get("LACAK_SECRET_KEY") or None,
            admin_token=env.get("LACAK_ADMIN_TOKEN") or None,
            tariff_file=Path(tariff) if tariff else None,
            key_cache_ttl=num("LACAK_KEY_CACHE_TTL", 5.0),
            webhook_allow_private=env.get("LACAK_WEBHOOK_ALLOW_PRIVATE", "").lower() in _TRUE,
            db_pool_size=int(num("LACAK_DB_POOL_SIZE", 10)),
            log_level=env.get("LACAK_LOG_LEVEL", "INFO").upper(),
            access_log=env.get("LACAK_ACCESS_LOG", "1").lower() in _TRUE,
            host=env.get("LACAK_HOST", "127.0.0.1"),
            port=int(num("LACAK_PORT", 8080)),
        )
