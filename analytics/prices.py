"""What things cost: model token prices (from `genai-prices`, with their history) and the
Assistants tool and storage prices (versioned in analytics/data/prices.json), any of which a
user file (`--prices FILE`, JSON or YAML) overrides.

SQL sees the same numbers as Python through two tables, `model_prices` and `tool_prices`:
`write_price_table(store_dir, models)` writes them as Parquet under STORE/tables/_prices/ (only
the recorder does: the store's views read them, so plain `duckdb -readonly STORE/audit.duckdb`
prices runs), and `install_price_tables(con, prices, models)` puts them on one connection as TEMP
tables, which shadow the stored ones (how `report --prices FILE` re-prices without touching the
store, and how a reader prices a store no recorder has priced yet: a read never writes).

A model with no known price has no row: its cost is NULL and it is listed as unpriced, never 0.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import genai_prices
import yaml
from genai_prices import data_snapshot, types

from proxy.config import Settings

MODEL_PRICE_COLUMNS = (
    "model VARCHAR, valid_from DATE, valid_to DATE, input_usd_per_mtok DOUBLE, "
    "output_usd_per_mtok DOUBLE, cached_input_usd_per_mtok DOUBLE, source VARCHAR"
)
TOOL_PRICE_COLUMNS = (
    "kind VARCHAR, usd DOUBLE, unit VARCHAR, free_quantity DOUBLE, session_seconds DOUBLE, "
    "valid_from DATE, valid_to DATE, source VARCHAR"
)
PRICES_SUBDIR = "_prices"


@dataclass(frozen=True, slots=True)
class ToolItem:
    """One priced tool or storage item of the price file: the unit its `usd` is per, and the flat
    override keys (`--prices`) that each set one field of its current version."""

    unit: str
    flat_keys: tuple[tuple[str, str], ...]  # (override key, field of the version)


# The vocabulary of tool and storage prices: `tool_prices.kind`, the items of
# analytics/data/prices.json and of an override file. Each is defined here once.
TOOL_ITEMS: dict[str, ToolItem] = {
    "vector_store_storage": ToolItem("GiB-day", (("storage_usd_per_gib_day", "usd"), ("free_storage_gib", "free_gib"))),
    "code_interpreter_session": ToolItem("session", (("code_interpreter_usd_per_session", "usd"),)),
    "retrieval_storage": ToolItem("GiB-assistant-day", (("retrieval_usd_per_gib_assistant_day", "usd"),)),
    # the Responses API's per-call tool fees and its code_interpreter containers
    "file_search_call": ToolItem("call", (("file_search_usd_per_call", "usd"),)),
    "web_search_call": ToolItem("call", (("web_search_usd_per_call", "usd"),)),
    "code_interpreter_container": ToolItem("container session",
                                           (("code_interpreter_usd_per_container_session", "usd"),)),
}
TOOL_KINDS = tuple(TOOL_ITEMS)
# Flat override keys, named like the Prices attributes: key -> (item, field).
_FLAT_KEYS = {key: (kind, fieldname) for kind, item in TOOL_ITEMS.items() for key, fieldname in item.flat_keys}


class PricesError(ValueError):
    """A price file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class ModelPricePeriod:
    """One price of one model, in force from valid_from (inclusive) to valid_to (exclusive); None = open."""

    model: str
    valid_from: date | None
    valid_to: date | None
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cached_input_usd_per_mtok: float | None
    source: str


@dataclass(frozen=True, slots=True)
class ToolPrice:
    """One version of a tool or storage price."""

    kind: str
    usd: float
    unit: str
    free_quantity: float | None
    session_seconds: float | None
    valid_from: date | None
    valid_to: date | None
    source: str


def _as_date(value: Any, where: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PricesError(f"{where}: effective_from {value!r} is not a YYYY-MM-DD date") from None


def _num(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PricesError(f"{where}: {value!r} is not a number") from None


def _close_periods(starts: list[tuple[date | None, Any]]) -> list[tuple[date | None, date | None, Any]]:
    """[(start, x), ...] -> [(start, next start, x), ...] sorted, the first open at the start."""
    ordered = sorted(starts, key=lambda item: item[0] or date.min)
    return [
        (start, ordered[i + 1][0] if i + 1 < len(ordered) else None, item)
        for i, (start, item) in enumerate(ordered)
    ]


def _genai_version() -> str:
    return f"genai-prices {genai_prices.__version__}"


def _base(value: Any) -> float | None:
    if value is None:
        return None
    value = getattr(value, "base", value)  # TieredPrices: the first tier
    return float(value) if isinstance(value, Decimal | int | float) else None


def _genai_periods(model: str) -> list[ModelPricePeriod]:
    """The price history genai-prices knows for `model` (OpenAI first, then any provider)."""
    snapshot = data_snapshot.get_snapshot()
    found = None
    for provider_id in ("openai", None):
        try:
            found = snapshot.find_provider_model(model, None, provider_id, None)
            break
        except LookupError:
            continue
    if found is None:
        return []
    provider, info = found
    source = f"{_genai_version()} {provider.id}/{info.id}"
    if isinstance(info.prices, types.ModelPrice):
        starts = [(None, info.prices)]
    else:
        # Time-of-day prices (off-peak) cannot be a date period; the dated history is kept.
        starts = [
            (getattr(c.constraint, "start_date", None), c.prices)
            for c in info.prices
            if c.constraint is None or isinstance(c.constraint, types.StartDateConstraint)
        ]
    periods = []
    for start, end, price in _close_periods(starts):
        inp, out = _base(getattr(price, "input_mtok", None)), _base(getattr(price, "output_mtok", None))
        if inp is None or out is None:
            continue
        tiered = any(hasattr(getattr(price, k, None), "tiers") for k in ("input_mtok", "output_mtok"))
        periods.append(
            ModelPricePeriod(
                model=model,
                valid_from=start,
                valid_to=end,
                input_usd_per_mtok=inp,
                output_usd_per_mtok=out,
                cached_input_usd_per_mtok=_base(getattr(price, "cache_read_mtok", None)),
                source=source + (" (base tier)" if tiered else ""),
            )
        )
    return periods


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PricesError(f"--prices {path}: {exc.strerror or exc}") from None

    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except yaml.MarkedYAMLError as exc:  # its str() is several lines with a caret drawing
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise PricesError(f"--prices {path}{at}: not valid YAML: {exc.problem or exc.context}") from None
    except json.JSONDecodeError as exc:
        raise PricesError(f"--prices {path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise PricesError(f"--prices {path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise PricesError(f"--prices {path}: the top level must be a mapping")
    return data


def _tool_versions(kind: str, raw: Any, where: str) -> list[ToolPrice]:
    versions = raw if isinstance(raw, list) else [raw]
    starts = []
    for v in versions:
        if not isinstance(v, dict) or "usd" not in v:
            raise PricesError(f"{where}: {kind} needs a mapping with 'usd' (or a list of them)")
        starts.append((_as_date(v.get("effective_from"), where), v))
    out = []
    for start, end, v in _close_periods(starts):
        free = v.get("free_gib", v.get("free_quantity"))
        session = v.get("session_seconds")
        out.append(
            ToolPrice(
                kind=kind,
                usd=_num(v["usd"], f"{where}: {kind}.usd"),
                unit=str(v.get("unit", TOOL_ITEMS[kind].unit)),
                free_quantity=None if free is None else _num(free, f"{where}: {kind}.free_gib"),
                session_seconds=None if session is None else _num(session, f"{where}: {kind}.session_seconds"),
                valid_from=start,
                valid_to=end,
                source=str(v.get("source", where)),
            )
        )
    return out


class Prices:
    """All prices, as of the bundled data plus an optional override file."""

    def __init__(
        self,
        tools: dict[str, list[ToolPrice]],
        model_overrides: dict[str, list[ModelPricePeriod]] | None = None,
        model_aliases: dict[str, str] | None = None,
    ) -> None:
        self.tools = tools
        self.model_overrides = {k.lower(): v for k, v in (model_overrides or {}).items()}
        self.model_aliases = {k.lower(): v for k, v in (model_aliases or {}).items()}
        self._cache: dict[str, list[ModelPricePeriod]] = {}

    @classmethod
    def load(cls, override_file: str | os.PathLike[str] | None = None) -> "Prices":
        bundled = json.loads(resources.files("analytics").joinpath("data/prices.json").read_text())
        tools = {
            kind: _tool_versions(kind, versions, "analytics/data/prices.json")
            for kind, versions in bundled["items"].items()
        }
        if override_file is None:
            return cls(tools)
        path = Path(override_file)
        data = _read_file(path)
        where = f"override:{path.name}"
        for key, (kind, fieldname) in _FLAT_KEYS.items():
            if key in data:
                current = tools[kind][-1]
                merged = {
                    "usd": current.usd,
                    "unit": current.unit,
                    "free_gib": current.free_quantity,
                    "session_seconds": current.session_seconds,
                    "source": where,
                    fieldname: data[key],
                }
                tools[kind] = _tool_versions(kind, merged, where)
        for kind in TOOL_KINDS:
            if kind in data:
                tools[kind] = _tool_versions(kind, data[kind], where)
        unknown = set(data) - set(_FLAT_KEYS) - set(TOOL_KINDS) - {"models", "version", "currency", "note"}
        if unknown:
            raise PricesError(f"--prices {path}: unknown key(s) {', '.join(sorted(unknown))}")
        overrides: dict[str, list[ModelPricePeriod]] = {}
        aliases: dict[str, str] = {}
        models = data.get("models") or {}
        if not isinstance(models, dict):
            raise PricesError(f"--prices {path}: 'models' must map model names to prices")
        for name, spec in models.items():
            if isinstance(spec, str):
                aliases[str(name)] = spec
                continue
            if isinstance(spec, dict) and "same_as" in spec:
                aliases[str(name)] = str(spec["same_as"])
                continue
            versions = spec if isinstance(spec, list) else [spec]
            starts = []
            for v in versions:
                if not isinstance(v, dict) or not {"input_usd_per_mtok", "output_usd_per_mtok"} <= set(v):
                    raise PricesError(
                        f"--prices {path}: model {name} needs input_usd_per_mtok and output_usd_per_mtok"
                    )
                starts.append((_as_date(v.get("effective_from"), f"--prices {path}: model {name}"), v))
            overrides[str(name)] = [
                ModelPricePeriod(
                    model=str(name),
                    valid_from=start,
                    valid_to=end,
                    input_usd_per_mtok=_num(v["input_usd_per_mtok"], f"{where}: {name}"),
                    output_usd_per_mtok=_num(v["output_usd_per_mtok"], f"{where}: {name}"),
                    cached_input_usd_per_mtok=(
                        None
                        if v.get("cached_input_usd_per_mtok") is None
                        else _num(v["cached_input_usd_per_mtok"], f"{where}: {name}")
                    ),
                    source=str(v.get("source", where)),
                )
                for start, end, v in _close_periods(starts)
            ]
        return cls(tools, overrides, aliases)

    # -- tool and storage prices (the version in force today) -------------------------------

    def tool_price(self, kind: str, at: datetime | date | None = None) -> ToolPrice:
        day = (at.date() if isinstance(at, datetime) else at) or datetime.now(UTC).date()
        versions = self.tools[kind]
        for v in versions:
            if (v.valid_from is None or v.valid_from <= day) and (v.valid_to is None or day < v.valid_to):
                return v
        return versions[0] if day < (versions[0].valid_from or date.min) else versions[-1]

    @property
    def storage_usd_per_gib_day(self) -> float:
        return self.tool_price("vector_store_storage").usd

    @property
    def free_storage_gib(self) -> float:
        return self.tool_price("vector_store_storage").free_quantity or 0.0

    @property
    def code_interpreter_usd_per_session(self) -> float:
        return self.tool_price("code_interpreter_session").usd

    @property
    def code_interpreter_session_seconds(self) -> float:
        return self.tool_price("code_interpreter_session").session_seconds or 3600.0

    @property
    def retrieval_usd_per_gib_assistant_day(self) -> float:
        return self.tool_price("retrieval_storage").usd

    @property
    def file_search_usd_per_call(self) -> float:
        return self.tool_price("file_search_call").usd

    @property
    def web_search_usd_per_call(self) -> float:
        return self.tool_price("web_search_call").usd

    @property
    def code_interpreter_usd_per_container_session(self) -> float:
        return self.tool_price("code_interpreter_container").usd

    # -- model token prices -------------------------------------------------------------------

    def model_periods(self, model: str) -> list[ModelPricePeriod]:
        """Price history of `model`; [] when unpriced."""
        key = model.lower()
        if key not in self._cache:
            if key in self.model_overrides:
                periods = self.model_overrides[key]
            elif key in self.model_aliases:
                target = self.model_aliases[key]
                periods = [
                    ModelPricePeriod(model, p.valid_from, p.valid_to, p.input_usd_per_mtok,
                                     p.output_usd_per_mtok, p.cached_input_usd_per_mtok,
                                     f"{p.source} (alias of {target})")
                    for p in self.model_periods(target)
                ]
            else:
                periods = _genai_periods(model)
            self._cache[key] = [
                ModelPricePeriod(model, *(getattr(p, f) for f in ModelPricePeriod.__slots__[1:]))
                for p in periods
            ]
        return self._cache[key]

    def model_period(self, model: str | None, at: datetime) -> ModelPricePeriod | None:
        if not model:
            return None
        day = at.astimezone(UTC).date() if at.tzinfo else at.date()
        for p in self.model_periods(model):
            if (p.valid_from is None or p.valid_from <= day) and (p.valid_to is None or day < p.valid_to):
                return p
        return None

    def token_cost(
        self, model: str | None, input_tokens: int, output_tokens: int, at: datetime, *, cached_input_tokens: int = 0
    ) -> tuple[float | None, str]:
        """USD for these tokens at the price in force at `at`; (None, "unpriced") if unknown.
        `cached_input_tokens` (part of `input_tokens`) are priced at the model's cached-input
        price where it has one."""
        p = self.model_period(model, at)
        if p is None:
            return None, "unpriced"
        cached = min(max(cached_input_tokens, 0), input_tokens) if p.cached_input_usd_per_mtok is not None else 0
        usd = ((input_tokens - cached) * p.input_usd_per_mtok + cached * (p.cached_input_usd_per_mtok or 0.0)
               + output_tokens * p.output_usd_per_mtok) / 1e6
        return usd, p.source

    # -- tables for SQL ------------------------------------------------------------------------

    def model_price_rows(self, models: Iterable[str]) -> list[tuple]:
        rows = []
        for model in sorted({m for m in models if m}):
            for p in self.model_periods(model):
                rows.append(
                    (model, p.valid_from, p.valid_to, p.input_usd_per_mtok, p.output_usd_per_mtok,
                     p.cached_input_usd_per_mtok, p.source)
                )
        return rows

    def tool_price_rows(self) -> list[tuple]:
        return [
            (t.kind, t.usd, t.unit, t.free_quantity, t.session_seconds, t.valid_from, t.valid_to, t.source)
            for kind in TOOL_KINDS
            for t in self.tools[kind]
        ]


def _fill(con: Any, table: str, columns: str, rows: list[tuple], *, temp: bool) -> None:
    con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {table} ({columns})")
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def install_price_tables(con: Any, prices: Prices, models: Iterable[str]) -> None:
    """Create TEMP tables model_prices/tool_prices on `con`; they shadow the store's for this connection."""
    _fill(con, "model_prices", MODEL_PRICE_COLUMNS, prices.model_price_rows(models), temp=True)
    _fill(con, "tool_prices", TOOL_PRICE_COLUMNS, prices.tool_price_rows(), temp=True)


def price_paths(store_dir: str | os.PathLike[str]) -> dict[str, Path]:
    # Under STORE/tables/ because the store's query connections may only read there.
    base = Path(store_dir).absolute() / "tables" / PRICES_SUBDIR
    return {"model_prices": base / "model_prices.parquet", "tool_prices": base / "tool_prices.parquet"}


def _stored_models(path: Path) -> set[str]:
    if not path.exists():
        return set()
    try:
        return {r[0] for r in duckdb.sql(f"SELECT DISTINCT model FROM read_parquet('{path}')").fetchall()}
    except duckdb.Error:
        return set()


def write_price_table(
    store_dir: str | os.PathLike[str], models: Iterable[str] = (), prices: Prices | None = None
) -> dict[str, Path]:
    """Write STORE/prices/{model_prices,tool_prices}.parquet for `models` plus those already there.

    Call it at start-up and whenever a model not priced yet is seen; each file is replaced
    atomically (written aside, then renamed), so readers never see half a file and nothing is locked.
    Unknown models get no row: their cost stays NULL and the costs view says "unpriced".
    """
    prices = prices or Prices.load()
    paths = price_paths(store_dir)
    paths["model_prices"].parent.mkdir(parents=True, exist_ok=True)
    wanted = set(models) | _stored_models(paths["model_prices"])
    con = duckdb.connect()
    try:
        install_price_tables(con, prices, wanted)
        for table, path in paths.items():
            # per process and thread: two threads of one process may write the tables at once
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            con.execute(f"COPY {table} TO '{tmp}' (FORMAT parquet)")
            os.replace(tmp, path)
    finally:
        con.close()
    return paths


# The fact tables whose `model` is priced: runs (and the assistants they run) and responses.
PRICED_MODEL_TABLES = ("run_snapshots", "assistant_observations", "response_snapshots")


def store_models(store_dir: str | os.PathLike[str]) -> set[str]:
    """Model names in the store's runs, assistants and responses (a scan of one column)."""
    tables = Path(store_dir).absolute() / "tables"
    found: set[str] = set()
    for table in PRICED_MODEL_TABLES:
        if not any((tables / table).glob("*.parquet")):
            continue
        glob = (tables / table / "*.parquet").as_posix().replace("'", "''")
        try:
            rows = duckdb.sql(
                f"SELECT DISTINCT model FROM read_parquet('{glob}', union_by_name=true) WHERE model IS NOT NULL"
            ).fetchall()
        except duckdb.Error:
            continue
        found.update(r[0] for r in rows)
    return found


def price_views_sql(store_dir: str | os.PathLike[str]) -> str:
    """CREATE VIEW statements for model_prices/tool_prices over the store's price Parquet files
    (text only: the files are written by the recorder, see write_price_table and PriceSink)."""
    out = []
    for name, path in price_paths(store_dir).items():
        quoted = path.as_posix().replace("'", "''")
        out.append(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{quoted}');")
    return "\n".join(out)


def cost_views_sql() -> str:
    return resources.files("analytics").joinpath("costs.sql").read_text()


def connection_models(con: Any) -> list[str]:
    """Model names in the runs, assistants and responses a store connection sees."""
    return [r[0] for r in con.execute(" UNION ".join(
        f"SELECT model FROM {table} WHERE model IS NOT NULL" for table in PRICED_MODEL_TABLES)).fetchall()]


def install_report_prices(con: Any, prices: Prices) -> list[str]:
    """Price every model in the store's runs with `prices` on this connection (TEMP tables that
    shadow the stored ones), creating the cost views if the connection lacks them.
    Returns the models seen."""
    models = connection_models(con)
    install_price_tables(con, prices, models)
    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    if "costs" not in have:
        con.execute(cost_views_sql().replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW"))
    return models


class PriceSink:
    """proxy.recording.dispatch.Sink that keeps STORE/tables/_prices/ current: when a model not seen
    before appears in a run, an assistant or a response, the price files are rewritten on the next flush,
    so `duckdb -readonly STORE/audit.duckdb` prices it. Runs on the recorder's worker thread."""

    wants_replay = True  # models seen only in replayed exchanges need prices too

    def __init__(self, settings: Settings) -> None:
        self.store = settings.store
        self.prices = Prices.load(settings.prices)
        self.seen: set[str] = set(_stored_models(price_paths(self.store)["model_prices"]))
        self.new: set[str] = set()
        self.writes = 0

    def on_exchange(self, exchange: Any, facts: Any) -> None:
        for fact in facts:
            model = getattr(fact, "model", None) if fact.TABLE in PRICED_MODEL_TABLES else None
            if model and model not in self.seen:
                self.seen.add(model)
                self.new.add(model)

    def flush(self) -> None:
        if self.new:
            models, self.new = self.new, set()
            try:
                write_price_table(self.store, models, self.prices)
            except Exception:
                self.new |= models  # retried on the next flush
                raise
            self.writes += 1

    def close(self) -> None:
        self.flush()
