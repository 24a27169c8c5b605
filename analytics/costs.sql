-- Cost views. Loaded after analytics/views.sql, over the public views (runs, run_steps,
-- tool_calls, vector_store_usage, exchanges), a few raw fact tables (proxy/facts.py) and the
-- price tables model_prices / tool_prices (analytics/prices.py). All days are UTC days.
-- Money is USD (DOUBLE). A run whose model has no price has usd NULL and price_source 'unpriced'.

-- Token cost of each run that reported usage, at the model price in force on the run's day.
-- Usage the recorder refused (runs.usage_invalid) is never priced, nor token counts out of any
-- model's range that a store written before that check may still hold (proxy.facts.MAX_USAGE_TOKENS).
CREATE OR REPLACE VIEW run_costs AS
WITH r AS (
    SELECT *, coalesce(created_at, started_at) AS priced_at FROM runs
    WHERE (prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL OR total_tokens IS NOT NULL)
      AND usage_invalid IS NULL
      AND coalesce(prompt_tokens, 0) BETWEEN 0 AND 10000000
      AND coalesce(completion_tokens, 0) BETWEEN 0 AND 10000000
      AND coalesce(total_tokens, 0) BETWEEN 0 AND 10000000
)
SELECT r.run_id, r.thread_id, r.assistant_id, r.model, r.status, r.api_version,
       r.priced_at, CAST(timezone('UTC', r.priced_at) AS DATE) AS day,
       r.key_fingerprint, r.last_error_code, r.incomplete_reason,
       coalesce(r.prompt_tokens, 0) AS prompt_tokens,
       coalesce(r.completion_tokens, 0) AS completion_tokens,
       coalesce(r.total_tokens, coalesce(r.prompt_tokens, 0) + coalesce(r.completion_tokens, 0)) AS total_tokens,
       p.input_usd_per_mtok, p.output_usd_per_mtok,
       (coalesce(r.prompt_tokens, 0) * p.input_usd_per_mtok
        + coalesce(r.completion_tokens, 0) * p.output_usd_per_mtok) / 1e6 AS usd,
       coalesce(p.source, 'unpriced') AS price_source
FROM r
LEFT JOIN model_prices p
       ON lower(p.model) = lower(r.model)
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', r.priced_at) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', r.priced_at) AS DATE) < p.valid_to);

-- Every code_interpreter tool call with the best time known for it.
CREATE OR REPLACE VIEW code_interpreter_calls AS
SELECT tc.tool_call_id,
       coalesce(tc.thread_id, s.thread_id, r.thread_id) AS thread_id,
       coalesce(tc.run_id, s.run_id) AS run_id,
       r.assistant_id, r.key_fingerprint,
       coalesce(s.created_at, r.started_at, r.created_at) AS called_at
FROM tool_calls tc
LEFT JOIN run_steps s ON s.step_id = tc.step_id
LEFT JOIN runs r ON r.run_id = coalesce(tc.run_id, s.run_id)
WHERE tc.type = 'code_interpreter';

-- Sessions: per thread, a session opens at a code_interpreter call and lasts session_seconds
-- (one hour); the first call after that opens the next one.
CREATE OR REPLACE VIEW code_interpreter_sessions AS
WITH RECURSIVE calls AS (
    SELECT thread_id, run_id, assistant_id, key_fingerprint, called_at,
           row_number() OVER (PARTITION BY thread_id ORDER BY called_at, tool_call_id) AS rn
    FROM code_interpreter_calls WHERE thread_id IS NOT NULL AND called_at IS NOT NULL
),
walk(thread_id, rn, called_at, session_no, session_start) AS (
    SELECT thread_id, rn, called_at, 1, called_at FROM calls WHERE rn = 1
    UNION ALL
    SELECT c.thread_id, c.rn, c.called_at,
           w.session_no + CASE WHEN epoch(c.called_at) - epoch(w.session_start)
                                    >= (SELECT max(session_seconds) FROM tool_prices WHERE kind = 'code_interpreter_session')
                               THEN 1 ELSE 0 END,
           CASE WHEN epoch(c.called_at) - epoch(w.session_start)
                     >= (SELECT max(session_seconds) FROM tool_prices WHERE kind = 'code_interpreter_session')
                THEN c.called_at ELSE w.session_start END
    FROM walk w JOIN calls c ON c.thread_id = w.thread_id AND c.rn = w.rn + 1
),
sessions AS (
    SELECT w.thread_id, w.session_no, min(w.session_start) AS session_start, count(*) AS calls,
           arg_min(c.run_id, c.rn) AS run_id, arg_min(c.assistant_id, c.rn) AS assistant_id,
           arg_min(c.key_fingerprint, c.rn) AS key_fingerprint
    FROM walk w JOIN calls c ON c.thread_id = w.thread_id AND c.rn = w.rn
    GROUP BY w.thread_id, w.session_no
)
SELECT s.*, CAST(timezone('UTC', s.session_start) AS DATE) AS day, p.usd, p.source AS price_source
FROM sessions s
LEFT JOIN tool_prices p
       ON p.kind = 'code_interpreter_session'
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', s.session_start) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', s.session_start) AS DATE) < p.valid_to);

-- When each vector store stopped being billed: deleted, expired, or still live (now).
CREATE OR REPLACE VIEW vector_store_lifetimes AS
WITH o AS (
    SELECT vector_store_id, name, key_fingerprint, deleted_at, expires_at,
           CASE WHEN status = 'expired' THEN coalesce(expires_at, last_seen_at) END AS seen_expired_at
    FROM vector_stores
)
SELECT *, least(deleted_at, seen_expired_at, CASE WHEN expires_at <= now() THEN expires_at END) AS ended_at,
       least(deleted_at, seen_expired_at, CASE WHEN expires_at <= now() THEN expires_at END, now()) AS billed_until
FROM o;

-- Byte-seconds as intervals of constant size: per vector store (time-weighted between
-- observations, up to deletion/expiry/now), org-wide over all stores, and per v1 assistant
-- with retrieval files. One split into UTC days serves all three.
CREATE OR REPLACE VIEW storage_intervals AS
WITH vs AS (
    SELECT u.vector_store_id AS subject_id, u.observed_at AS t0,
           least(lead(u.observed_at) OVER (PARTITION BY u.vector_store_id ORDER BY u.observed_at), l.billed_until) AS t1,
           u.usage_bytes AS bytes
    FROM vector_store_usage u JOIN vector_store_lifetimes l USING (vector_store_id)
    WHERE u.usage_bytes IS NOT NULL
),
vs_ok AS (SELECT * FROM vs WHERE t1 > t0),
deltas AS (
    SELECT t, sum(d) AS d FROM (
        SELECT t0 AS t, bytes AS d FROM vs_ok UNION ALL SELECT t1 AS t, -bytes AS d FROM vs_ok
    ) GROUP BY t
),
org AS (
    SELECT t AS t0, lead(t) OVER (ORDER BY t) AS t1, sum(d) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING) AS bytes
    FROM deltas
),
asst_state AS (
    SELECT assistant_id, observed_at AS t0,
           coalesce(lead(observed_at) OVER (PARTITION BY assistant_id ORDER BY observed_at, exchange_id, seq), now()) AS t1,
           NOT deleted AND list_contains(tools, 'retrieval') AS retrieval
    FROM (SELECT DISTINCT ON (exchange_id, seq) * FROM assistant_observations)
),
-- each attached file for as long as it was attached while the assistant had retrieval on
asst AS (
    SELECT s.assistant_id AS subject_id, greatest(s.t0, a.attached_at) AS t0,
           least(s.t1, coalesce(a.detached_at, now())) AS t1, f.bytes
    FROM asst_state s
    JOIN attached_file_intervals a
      ON a.owner = 'assistant' AND a.owner_id = s.assistant_id
     AND a.attached_at < s.t1 AND coalesce(a.detached_at, now()) > s.t0
    JOIN files f ON f.file_id = a.file_id
    WHERE s.retrieval
)
SELECT 'vector_store' AS scope, subject_id, t0, t1, bytes FROM vs_ok
UNION ALL SELECT 'org', NULL, t0, t1, bytes FROM org WHERE t1 > t0 AND bytes > 0
UNION ALL SELECT 'retrieval', subject_id, t0, t1, bytes FROM asst WHERE t1 > t0 AND bytes > 0;

CREATE OR REPLACE VIEW storage_days AS
WITH i AS (
    SELECT scope, subject_id, timezone('UTC', t0) AS t0, timezone('UTC', t1) AS t1, bytes FROM storage_intervals
),
d AS (
    SELECT scope, subject_id, t0, t1, bytes,
           unnest(generate_series(date_trunc('day', t0), t1, INTERVAL 1 DAY)) AS day_start
    FROM i
)
SELECT scope, subject_id, CAST(day_start AS DATE) AS day,
       sum(bytes * (epoch(least(t1, day_start + INTERVAL 1 DAY)) - epoch(greatest(t0, day_start))))
           / 1073741824.0 / 86400.0 AS gib_days,
       sum(greatest(0, bytes - coalesce(p.free_quantity, 0) * 1073741824.0)
           * (epoch(least(t1, day_start + INTERVAL 1 DAY)) - epoch(greatest(t0, day_start))))
           / 1073741824.0 / 86400.0 AS gib_days_over_free
FROM d
LEFT JOIN tool_prices p
       ON p.kind = 'vector_store_storage' AND scope = 'org'
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(day_start AS DATE))
      AND (p.valid_to IS NULL OR CAST(day_start AS DATE) < p.valid_to)
WHERE least(t1, day_start + INTERVAL 1 DAY) > greatest(t0, day_start)
GROUP BY ALL;

-- GiB-days per vector store per UTC day. The free GiB is applied org-wide, instant by instant
-- (org_billable_gib_days = integral of max(0, all stores - free GiB)), and the billable amount
-- is shared among that day's stores in proportion to their GiB-days.
CREATE OR REPLACE VIEW vector_store_storage_daily AS
WITH s AS (SELECT subject_id AS vector_store_id, day, gib_days FROM storage_days WHERE scope = 'vector_store'),
o AS (SELECT day, gib_days AS org_gib_days, gib_days_over_free AS org_billable_gib_days FROM storage_days WHERE scope = 'org')
SELECT s.vector_store_id, s.day, s.gib_days, o.org_gib_days, o.org_billable_gib_days,
       CASE WHEN o.org_gib_days > 0 THEN o.org_billable_gib_days * s.gib_days / o.org_gib_days ELSE 0 END AS billable_gib_days,
       p.usd AS usd_per_gib_day,
       p.usd * CASE WHEN o.org_gib_days > 0 THEN o.org_billable_gib_days * s.gib_days / o.org_gib_days ELSE 0 END AS usd,
       p.source AS price_source, l.key_fingerprint, l.name
FROM s JOIN o USING (day)
LEFT JOIN vector_store_lifetimes l USING (vector_store_id)
LEFT JOIN tool_prices p
       ON p.kind = 'vector_store_storage'
      AND (p.valid_from IS NULL OR p.valid_from <= s.day)
      AND (p.valid_to IS NULL OR s.day < p.valid_to);

-- v1 retrieval storage: GiB of retrieval files attached to each assistant, per day, billed to
-- the key the assistant was seen with (so cost_by_key attributes it).
CREATE OR REPLACE VIEW retrieval_storage_daily AS
SELECT d.subject_id AS assistant_id, d.day, d.gib_days, p.usd AS usd_per_gib_day, p.usd * d.gib_days AS usd,
       p.source AS price_source, a.key_fingerprint
FROM storage_days d
LEFT JOIN assistants a ON a.assistant_id = d.subject_id
LEFT JOIN tool_prices p
       ON p.kind = 'retrieval_storage'
      AND (p.valid_from IS NULL OR p.valid_from <= d.day)
      AND (p.valid_to IS NULL OR d.day < p.valid_to)
WHERE d.scope = 'retrieval';

-- One line per billable item.
CREATE OR REPLACE VIEW costs AS
SELECT priced_at AS occurred_at, day, 'tokens' AS kind, run_id, thread_id, assistant_id,
       CAST(NULL AS VARCHAR) AS vector_store_id, model, key_fingerprint,
       CAST(total_tokens AS DOUBLE) AS quantity, 'tokens' AS unit, usd, price_source
FROM run_costs
UNION ALL
SELECT session_start, day, 'code_interpreter_session', run_id, thread_id, assistant_id,
       NULL, NULL, key_fingerprint, 1.0, 'session', usd, coalesce(price_source, 'unpriced')
FROM code_interpreter_sessions
UNION ALL
SELECT timezone('UTC', CAST(day AS TIMESTAMP)), day, 'vector_store_storage', NULL, NULL, NULL,
       vector_store_id, NULL, key_fingerprint, billable_gib_days, 'GiB-day', usd, coalesce(price_source, 'unpriced')
FROM vector_store_storage_daily
UNION ALL
SELECT timezone('UTC', CAST(day AS TIMESTAMP)), day, 'retrieval_storage', NULL, NULL, assistant_id,
       NULL, NULL, key_fingerprint, gib_days, 'GiB-assistant-day', usd, coalesce(price_source, 'unpriced')
FROM retrieval_storage_daily;

CREATE OR REPLACE VIEW cost_by_day AS
SELECT day, kind, count(*) AS items, sum(quantity) AS quantity, sum(usd) AS usd,
       count(*) FILTER (WHERE usd IS NULL) AS unpriced_items
FROM costs GROUP BY day, kind;

CREATE OR REPLACE VIEW cost_by_assistant AS
SELECT c.assistant_id, n.name,
       count(DISTINCT c.run_id) AS runs,
       sum(c.usd) FILTER (WHERE c.kind = 'tokens') AS token_usd,
       sum(c.usd) FILTER (WHERE c.kind = 'code_interpreter_session') AS code_interpreter_usd,
       sum(c.usd) FILTER (WHERE c.kind = 'retrieval_storage') AS retrieval_usd,
       sum(c.usd) AS usd,
       count(*) FILTER (WHERE c.usd IS NULL) AS unpriced_items
FROM costs c LEFT JOIN assistants n USING (assistant_id)
WHERE c.assistant_id IS NOT NULL
GROUP BY c.assistant_id, n.name;

CREATE OR REPLACE VIEW cost_by_model AS
SELECT model, count(*) AS runs, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(total_tokens) AS total_tokens, sum(usd) AS usd,
       count(*) FILTER (WHERE usd IS NULL) AS unpriced_runs,
       string_agg(DISTINCT price_source, '; ') AS price_source
FROM run_costs GROUP BY model;

CREATE OR REPLACE VIEW cost_by_key AS
SELECT key_fingerprint, kind, count(*) AS items, sum(usd) AS usd, count(*) FILTER (WHERE usd IS NULL) AS unpriced_items
FROM costs GROUP BY key_fingerprint, kind;

-- Which API versions are still in use, by whom (key fingerprint) and with what SDK.
CREATE OR REPLACE VIEW api_version_usage AS
SELECT api_version, beta_header, key_fingerprint, sdk, sdk_lang, sdk_version,
       count(*) AS exchanges, count(*) FILTER (WHERE v1_semantics) AS v1_semantics_exchanges,
       min(started_at) AS first_seen, max(started_at) AS last_seen
FROM (SELECT * REPLACE (coalesce(api_version, 'absent') AS api_version) FROM exchanges)
WHERE origin = 'client'
GROUP BY ALL;

-- Polling overhead per model and day: polls per run, share of polls that saw no change.
CREATE OR REPLACE VIEW polling_overhead AS
SELECT CAST(timezone('UTC', created_at) AS DATE) AS day, model,
       count(*) AS runs, count(*) FILTER (WHERE poll_count > 0) AS polled_runs,
       count(*) FILTER (WHERE streamed) AS streamed_runs,
       sum(poll_count) AS polls, sum(polls_unchanged) AS unchanged_polls,
       sum(poll_count) / count(*) AS polls_per_run,
       CASE WHEN sum(poll_count) > 0 THEN sum(polls_unchanged) / sum(poll_count) END AS unchanged_share
FROM runs
GROUP BY ALL;

-- Live vector stores: when a run last used them (through its assistant's or thread's
-- file_search tool_resources, or the store's own last_active_at) and what they will cost per
-- day at their current size, with the free GiB shared org-wide.
CREATE OR REPLACE VIEW vector_store_activity AS
WITH uses AS (
    SELECT unnest(a.vector_store_ids) AS vector_store_id, r.created_at FROM runs r JOIN assistants a USING (assistant_id)
    UNION ALL
    SELECT unnest(t.vector_store_ids) AS vector_store_id, r.created_at FROM runs r JOIN threads t USING (thread_id)
),
last_use AS (SELECT vector_store_id, max(created_at) AS last_run_at FROM uses GROUP BY vector_store_id),
v AS (
    SELECT l.vector_store_id, l.name, l.key_fingerprint, l.ended_at, l.expires_at,
           coalesce(vs.usage_bytes, 0) AS usage_bytes, vs.last_active_at, vs.created_at, u.last_run_at
    FROM vector_store_lifetimes l
    JOIN vector_stores vs USING (vector_store_id)
    LEFT JOIN last_use u USING (vector_store_id)
),
org AS (SELECT sum(usage_bytes) AS live_bytes FROM v WHERE ended_at IS NULL),
price AS (
    SELECT usd, coalesce(free_quantity, 0) AS free_gib, source FROM tool_prices
    WHERE kind = 'vector_store_storage'
      AND (valid_from IS NULL OR valid_from <= CAST(timezone('UTC', now()) AS DATE))
      AND (valid_to IS NULL OR CAST(timezone('UTC', now()) AS DATE) < valid_to)
)
SELECT v.vector_store_id, v.name, v.key_fingerprint, v.ended_at IS NULL AS billed, v.ended_at, v.expires_at,
       v.usage_bytes, v.usage_bytes / 1073741824.0 AS usage_gib, v.created_at, v.last_active_at, v.last_run_at,
       greatest(v.last_active_at, v.last_run_at, v.created_at) AS last_used_at,
       CASE WHEN v.ended_at IS NULL AND org.live_bytes > 0
            THEN v.usage_bytes / 1073741824.0 * price.usd
                 * greatest(0, org.live_bytes - price.free_gib * 1073741824.0) / org.live_bytes
            ELSE 0 END AS projected_daily_usd,
       price.source AS price_source
FROM v CROSS JOIN org LEFT JOIN price ON true;
