-- Cost views. Loaded after analytics/views.sql, over the public views (runs, run_steps,
-- tool_calls, responses, response_tool_calls, vector_store_usage, exchanges), a few raw fact
-- tables (proxy/facts.py) and the price tables model_prices / tool_prices (analytics/prices.py).
-- All days are UTC days. Money is USD (DOUBLE). An item whose model or tool has no price has usd
-- NULL and price_source 'unpriced'. `api` is the API generation an item belongs to (the
-- vocabulary of exchange_generations; storage of vector stores is `shared`, one fact
-- whichever API reads the store).

-- The API generation and SDK of each run: `foundry_agents` when a client called it through an
-- Azure AI Foundry project, else its Assistants version (`assistants_v1` when any sighting said
-- v1, else `assistants_v2`); `sdk` is the SDK of the first client call that showed it.
CREATE OR REPLACE VIEW run_generations AS
WITH seen AS (
    SELECT s.run_id, bool_or(g.api = 'foundry_agents') AS foundry,
           arg_min(g.sdk, g.started_at) FILTER (WHERE g.sdk IS NOT NULL) AS sdk
    FROM (SELECT DISTINCT run_id, exchange_id FROM run_snapshots) s
    JOIN exchange_generations g USING (exchange_id)
    GROUP BY s.run_id
)
SELECT r.run_id,
       CASE WHEN seen.foundry THEN 'foundry_agents' WHEN r.api_version = 'v1' THEN 'assistants_v1'
            ELSE 'assistants_v2' END AS api,
       seen.sdk
FROM runs r LEFT JOIN seen USING (run_id);

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
       coalesce(p.source, 'unpriced') AS price_source,
       coalesce(g.api, 'assistants_v2') AS api, g.sdk
FROM r
LEFT JOIN run_generations g USING (run_id)
LEFT JOIN model_prices p
       ON lower(p.model) = lower(r.model)
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', r.priced_at) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', r.priced_at) AS DATE) < p.valid_to);

-- Token cost of each response that reported usage, like run_costs: input tokens at the input
-- price except the cached ones, at the cached-input price (the input price for a model without
-- one); output tokens, reasoning tokens included (they are part of output_tokens), at the
-- output price. Refused usage (responses.usage_invalid) and impossible counts are never priced.
CREATE OR REPLACE VIEW response_costs AS
WITH r AS (
    SELECT *, coalesce(created_at, first_seen_at) AS priced_at FROM responses
    WHERE (input_tokens IS NOT NULL OR output_tokens IS NOT NULL OR total_tokens IS NOT NULL)
      AND usage_invalid IS NULL
      AND coalesce(input_tokens, 0) BETWEEN 0 AND 10000000
      AND coalesce(output_tokens, 0) BETWEEN 0 AND 10000000
      AND coalesce(total_tokens, 0) BETWEEN 0 AND 10000000
      AND coalesce(cached_input_tokens, 0) BETWEEN 0 AND coalesce(input_tokens, 0)
      AND coalesce(reasoning_tokens, 0) BETWEEN 0 AND coalesce(output_tokens, 0)
)
SELECT r.response_id, r.model, r.status, r.conversation_id, r.priced_at,
       CAST(timezone('UTC', r.priced_at) AS DATE) AS day,
       r.key_fingerprint, r.sdk, r.provider, r.error_code, r.incomplete_reason,
       coalesce(r.input_tokens, 0) AS input_tokens,
       coalesce(r.cached_input_tokens, 0) AS cached_input_tokens,
       coalesce(r.output_tokens, 0) AS output_tokens,
       coalesce(r.reasoning_tokens, 0) AS reasoning_tokens,
       coalesce(r.total_tokens, coalesce(r.input_tokens, 0) + coalesce(r.output_tokens, 0)) AS total_tokens,
       p.input_usd_per_mtok, coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok) AS cached_input_usd_per_mtok,
       p.output_usd_per_mtok,
       ((coalesce(r.input_tokens, 0) - coalesce(r.cached_input_tokens, 0)) * p.input_usd_per_mtok
        + coalesce(r.cached_input_tokens, 0) * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
        + coalesce(r.output_tokens, 0) * p.output_usd_per_mtok) / 1e6 AS usd,
       coalesce(p.source, 'unpriced') AS price_source,
       'responses' AS api
FROM r
LEFT JOIN model_prices p
       ON lower(p.model) = lower(r.model)
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', r.priced_at) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', r.priced_at) AS DATE) < p.valid_to);

-- Every tool call of a response with what its response says about it: model, key, SDK, and the
-- best time known (the response's created_at, else when the call was first seen).
CREATE OR REPLACE VIEW response_tool_call_times AS
SELECT c.call_id, c.response_id, c.type, c.status, c.container_id, c.vector_store_ids, r.model, r.key_fingerprint,
       r.sdk, coalesce(r.created_at, c.first_seen_at) AS called_at
FROM response_tool_calls c LEFT JOIN responses r USING (response_id);

-- The per-call tool fees of the Responses API: every file_search and web_search call item is
-- one billed call (`kind` file_search_call / web_search_call), at the price in force on its
-- response's day. Assistants runs pay no such fee. Tool calls are billed whatever the response's
-- usage said.
CREATE OR REPLACE VIEW response_tool_call_costs AS
SELECT c.call_id, c.response_id, c.type, c.type || '_call' AS kind, c.status, c.model, c.key_fingerprint, c.sdk,
       c.called_at AS occurred_at, CAST(timezone('UTC', c.called_at) AS DATE) AS day, p.usd,
       coalesce(p.source, 'unpriced') AS price_source
FROM response_tool_call_times c
LEFT JOIN tool_prices p
       ON p.kind = c.type || '_call'
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', c.called_at) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', c.called_at) AS DATE) < p.valid_to)
WHERE c.type IN ('file_search', 'web_search');

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

-- Code interpreter sessions of both APIs. Calls are grouped by scope: an Assistants thread
-- (kind code_interpreter_session), a Responses container (code_interpreter_container). A session
-- opens at a call and lasts the kind's session_seconds (a thread's hour, a container's 20
-- minutes); the first call after that opens the next one. The session starts of a scope are one
-- list_reduce over its call times, not a recursive CTE: DuckDB 2.0 hangs closing a connection
-- while a recursive CTE of an unfinished result still runs (fetchone, then close), and a reader of
-- `costs` must never hang (tests/analytics/test_reads_never_hang.py).
CREATE OR REPLACE VIEW tool_sessions AS
WITH lengths AS (
    SELECT kind, max(session_seconds) AS session_seconds FROM tool_prices GROUP BY kind
),
calls AS (
    SELECT *, row_number() OVER (PARTITION BY kind, scope_id ORDER BY called_at, call_id) AS rn
    FROM (
        SELECT 'code_interpreter_session' AS kind, thread_id AS scope_id, tool_call_id AS call_id, run_id,
               CAST(NULL AS VARCHAR) AS response_id, assistant_id, key_fingerprint, CAST(NULL AS VARCHAR) AS sdk,
               called_at
        FROM code_interpreter_calls
        UNION ALL
        SELECT 'code_interpreter_container', container_id, call_id, NULL, response_id, NULL, key_fingerprint, sdk,
               called_at
        FROM response_tool_call_times WHERE type = 'code_interpreter'
    )
    WHERE scope_id IS NOT NULL AND called_at IS NOT NULL
),
-- [t1, t2, ...] -> the epochs that open a session: t1, then each first call at least a session
-- length after the last opening (each element is a one-item list so the accumulator has its type).
starts AS (
    SELECT c.kind, c.scope_id,
           list_reduce(list([epoch(c.called_at)] ORDER BY c.rn),
                       lambda opened, call: CASE WHEN call[1] - opened[-1] >= l.session_seconds
                                                 THEN list_concat(opened, call) ELSE opened END) AS opened
    FROM calls c LEFT JOIN lengths l ON l.kind = c.kind
    GROUP BY c.kind, c.scope_id, l.session_seconds
),
numbered AS (
    SELECT c.*, len(list_filter(s.opened, lambda o: o <= epoch(c.called_at))) AS session_no
    FROM calls c JOIN starts s ON s.kind = c.kind AND s.scope_id = c.scope_id
),
sessions AS (
    SELECT kind, scope_id, session_no, min(called_at) AS session_start, count(*) AS calls,
           arg_min(run_id, rn) AS run_id, arg_min(response_id, rn) AS response_id,
           arg_min(assistant_id, rn) AS assistant_id, arg_min(key_fingerprint, rn) AS key_fingerprint,
           arg_min(sdk, rn) AS sdk
    FROM numbered
    GROUP BY kind, scope_id, session_no
)
SELECT s.*, CAST(timezone('UTC', s.session_start) AS DATE) AS day, p.usd, p.source AS price_source
FROM sessions s
LEFT JOIN tool_prices p
       ON p.kind = s.kind
      AND (p.valid_from IS NULL OR p.valid_from <= CAST(timezone('UTC', s.session_start) AS DATE))
      AND (p.valid_to IS NULL OR CAST(timezone('UTC', s.session_start) AS DATE) < p.valid_to);

-- Assistants code interpreter sessions: per thread, one hour each.
CREATE OR REPLACE VIEW code_interpreter_sessions AS
SELECT scope_id AS thread_id, session_no, session_start, calls, run_id, assistant_id, key_fingerprint, day, usd,
       price_source
FROM tool_sessions WHERE kind = 'code_interpreter_session';

-- Responses code interpreter container sessions: per container, 20 minutes each, billed to the
-- response of the session's first call.
CREATE OR REPLACE VIEW response_container_sessions AS
SELECT scope_id AS container_id, session_no, session_start, calls, response_id, key_fingerprint, sdk, day, usd,
       price_source
FROM tool_sessions WHERE kind = 'code_interpreter_container';

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

-- One line per billable item, of both APIs: `api` is its API generation, `response_id` the
-- response a Responses item belongs to, `sdk` the SDK of the call that showed the run or response.
CREATE OR REPLACE VIEW costs AS
SELECT priced_at AS occurred_at, day, 'tokens' AS kind, run_id, thread_id, assistant_id,
       CAST(NULL AS VARCHAR) AS vector_store_id, model, key_fingerprint,
       CAST(total_tokens AS DOUBLE) AS quantity, 'tokens' AS unit, usd, price_source,
       api, CAST(NULL AS VARCHAR) AS response_id, sdk
FROM run_costs
UNION ALL
SELECT s.session_start, s.day, 'code_interpreter_session', s.run_id, s.thread_id, s.assistant_id,
       NULL, NULL, s.key_fingerprint, 1.0, 'session', s.usd, coalesce(s.price_source, 'unpriced'),
       coalesce(g.api, 'assistants_v2'), NULL, g.sdk
FROM code_interpreter_sessions s LEFT JOIN run_generations g USING (run_id)
UNION ALL
SELECT timezone('UTC', CAST(day AS TIMESTAMP)), day, 'vector_store_storage', NULL, NULL, NULL,
       vector_store_id, NULL, key_fingerprint, billable_gib_days, 'GiB-day', usd, coalesce(price_source, 'unpriced'),
       'shared', NULL, NULL
FROM vector_store_storage_daily
UNION ALL
SELECT timezone('UTC', CAST(day AS TIMESTAMP)), day, 'retrieval_storage', NULL, NULL, assistant_id,
       NULL, NULL, key_fingerprint, gib_days, 'GiB-assistant-day', usd, coalesce(price_source, 'unpriced'),
       'assistants_v1', NULL, NULL
FROM retrieval_storage_daily
UNION ALL
SELECT priced_at, day, 'tokens', NULL, NULL, NULL, NULL, model, key_fingerprint,
       CAST(total_tokens AS DOUBLE), 'tokens', usd, price_source, api, response_id, sdk
FROM response_costs
UNION ALL
SELECT occurred_at, day, kind, NULL, NULL, NULL, NULL, model, key_fingerprint,
       1.0, 'call', usd, price_source, 'responses', response_id, sdk
FROM response_tool_call_costs
UNION ALL
SELECT session_start, day, 'code_interpreter_container', NULL, NULL, NULL, NULL, NULL, key_fingerprint,
       1.0, 'container session', usd, coalesce(price_source, 'unpriced'), 'responses', response_id, sdk
FROM response_container_sessions;

CREATE OR REPLACE VIEW cost_by_day AS
SELECT day, kind, count(*) AS items, sum(quantity) AS quantity, sum(usd) AS usd,
       count(*) FILTER (WHERE usd IS NULL) AS unpriced_items, api
FROM costs GROUP BY day, kind, api;

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

-- Token cost per API generation and model (runs: `runs`, responses: `responses`; prompt and
-- completion tokens are a response's input and output tokens).
CREATE OR REPLACE VIEW cost_by_model AS
WITH t AS (
    SELECT api, model, true AS is_run, prompt_tokens, completion_tokens, 0 AS cached_input_tokens,
           0 AS reasoning_tokens, total_tokens, usd, price_source
    FROM run_costs
    UNION ALL
    SELECT api, model, false, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, total_tokens, usd,
           price_source
    FROM response_costs
)
SELECT model, count(*) FILTER (WHERE is_run) AS runs, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens, sum(usd) AS usd,
       count(*) FILTER (WHERE usd IS NULL AND is_run) AS unpriced_runs,
       string_agg(DISTINCT price_source, '; ') AS price_source,
       api, count(*) FILTER (WHERE NOT is_run) AS responses,
       count(*) FILTER (WHERE usd IS NULL AND NOT is_run) AS unpriced_responses,
       sum(cached_input_tokens) AS cached_input_tokens, sum(reasoning_tokens) AS reasoning_tokens
FROM t GROUP BY api, model;

CREATE OR REPLACE VIEW cost_by_key AS
SELECT key_fingerprint, kind, count(*) AS items, sum(usd) AS usd, count(*) FILTER (WHERE usd IS NULL) AS unpriced_items,
       api
FROM costs GROUP BY key_fingerprint, kind, api;

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

-- Every use of a vector store, from both sides: an Assistants run through its assistant's or
-- thread's file_search tool_resources (`via` run), an assistant or thread naming it in those
-- tool_resources (a reference: no time of use), and a Responses file_search call (at its
-- response's time).
CREATE OR REPLACE VIEW vector_store_uses AS
SELECT unnest(a.vector_store_ids) AS vector_store_id, 'assistants' AS side, 'run' AS via, r.run_id AS id,
       CAST(NULL AS VARCHAR) AS response_id, r.created_at AS used_at
FROM runs r JOIN assistants a USING (assistant_id)
UNION ALL
SELECT unnest(t.vector_store_ids), 'assistants', 'run', r.run_id, NULL, r.created_at
FROM runs r JOIN threads t USING (thread_id)
UNION ALL
SELECT unnest(vector_store_ids), 'assistants', 'assistant', assistant_id, NULL, NULL FROM assistants
UNION ALL
SELECT unnest(vector_store_ids), 'assistants', 'thread', thread_id, NULL, NULL FROM threads
UNION ALL
SELECT unnest(vector_store_ids), 'responses', 'file_search_call', call_id, response_id, called_at
FROM response_tool_call_times WHERE type = 'file_search';

-- Live vector stores: when a run or a response last used them (through an assistant's or
-- thread's file_search tool_resources, a Responses file_search call, or the store's own
-- last_active_at) and what they will cost per day at their current size, with the free GiB
-- shared org-wide.
CREATE OR REPLACE VIEW vector_store_activity AS
WITH last_use AS (
    SELECT vector_store_id, max(used_at) FILTER (WHERE via = 'run') AS last_run_at,
           max(used_at) FILTER (WHERE side = 'responses') AS last_response_at
    FROM vector_store_uses GROUP BY vector_store_id
),
v AS (
    SELECT l.vector_store_id, l.name, l.key_fingerprint, l.ended_at, l.expires_at,
           coalesce(vs.usage_bytes, 0) AS usage_bytes, vs.last_active_at, vs.created_at, u.last_run_at,
           u.last_response_at
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
       greatest(v.last_active_at, v.last_run_at, v.last_response_at, v.created_at) AS last_used_at,
       CASE WHEN v.ended_at IS NULL AND org.live_bytes > 0
            THEN v.usage_bytes / 1073741824.0 * price.usd
                 * greatest(0, org.live_bytes - price.free_gib * 1073741824.0) / org.live_bytes
            ELSE 0 END AS projected_daily_usd,
       price.source AS price_source, v.last_response_at
FROM v CROSS JOIN org LEFT JOIN price ON true;

-- Migration from the Assistants API to the Responses API (and to Azure AI Foundry agents).
-- Calls (client exchanges), tokens (priced runs and responses) and cost (every costs item) per
-- UTC day, key fingerprint, SDK and API generation. Storage of vector stores (api
-- `shared`) and v1 retrieval storage have no SDK.
CREATE OR REPLACE VIEW migration_daily AS
WITH calls AS (
    SELECT CAST(timezone('UTC', started_at) AS DATE) AS day, key_fingerprint, sdk, api, count(*) AS calls
    FROM exchange_generations GROUP BY ALL
),
spend AS (
    SELECT day, key_fingerprint, sdk, api, sum(quantity) FILTER (WHERE kind = 'tokens') AS tokens,
           sum(usd) AS usd, count(*) FILTER (WHERE usd IS NULL) AS unpriced_items
    FROM costs GROUP BY ALL
)
SELECT day, key_fingerprint, sdk, api, sum(calls) AS calls, CAST(sum(tokens) AS BIGINT) AS tokens,
       coalesce(sum(usd), 0) AS usd, sum(unpriced_items) AS unpriced_items
FROM (
    SELECT day, key_fingerprint, sdk, api, calls, 0 AS tokens, NULL AS usd, 0 AS unpriced_items FROM calls
    UNION ALL
    SELECT day, key_fingerprint, sdk, api, 0, coalesce(tokens, 0), usd, unpriced_items FROM spend
)
GROUP BY ALL;

-- The same per ISO week (`week` its Monday, `iso_week` like 2026-W07): the migration's progress.
CREATE OR REPLACE VIEW migration_weekly AS
SELECT CAST(date_trunc('week', day) AS DATE) AS week, strftime(date_trunc('week', day), '%G-W%V') AS iso_week,
       key_fingerprint, sdk, api, sum(calls) AS calls, sum(tokens) AS tokens, sum(usd) AS usd,
       sum(unpriced_items) AS unpriced_items
FROM migration_daily
GROUP BY ALL;

-- Assistants still called (at least one run), one row per tool they have (one row with tool
-- NULL for an assistant without tools), with the Responses API's equivalent: retrieval (v1) and
-- file_search -> file_search over vector stores, code_interpreter -> code_interpreter in a
-- container, function -> function. `responses_tool_json` is the Responses tool to pass (NULL for
-- functions: the proxy does not keep their definitions).
CREATE OR REPLACE VIEW migration_assistants AS
WITH called AS (
    SELECT r.assistant_id, count(*) AS runs, min(r.created_at) AS first_run_at, max(r.created_at) AS last_run_at,
           arg_max(g.api, r.created_at) AS api,
           arg_max(g.sdk, r.created_at) FILTER (WHERE g.sdk IS NOT NULL) AS sdk,
           arg_max(r.key_fingerprint, r.created_at) FILTER (WHERE r.key_fingerprint IS NOT NULL) AS key_fingerprint
    FROM runs r LEFT JOIN run_generations g USING (run_id)
    WHERE r.assistant_id IS NOT NULL
    GROUP BY r.assistant_id
),
tools AS (
    SELECT assistant_id, unnest(CASE WHEN len(tools) > 0 THEN list_sort(list_distinct(tools)) ELSE [NULL::VARCHAR] END) AS tool
    FROM assistants
),
a AS (
    SELECT c.*, n.name, n.model, n.deleted, coalesce(n.vector_store_ids, []) AS vector_store_ids,
           coalesce(n.file_ids, []) AS file_ids,
           list_sort(list_distinct(list_concat(coalesce(n.code_interpreter_file_ids, []), coalesce(n.file_ids, []))))
               AS container_file_ids,
           t.tool
    FROM called c LEFT JOIN assistants n USING (assistant_id) LEFT JOIN tools t USING (assistant_id)
)
SELECT assistant_id, name, model, api, key_fingerprint, sdk,
       coalesce(deleted, false) AS deleted, runs, first_run_at, last_run_at, tool,
       CASE tool WHEN 'retrieval' THEN 'file_search' WHEN 'file_search' THEN 'file_search'
                 WHEN 'code_interpreter' THEN 'code_interpreter' WHEN 'function' THEN 'function' END AS responses_tool,
       CASE tool
           WHEN 'retrieval' THEN CAST(json_object('type', 'file_search', 'vector_store_ids', []::VARCHAR[]) AS VARCHAR)
           WHEN 'file_search' THEN CAST(json_object('type', 'file_search', 'vector_store_ids', vector_store_ids) AS VARCHAR)
           WHEN 'code_interpreter' THEN CAST(json_object('type', 'code_interpreter', 'container',
                                                         json_object('type', 'auto', 'file_ids', container_file_ids))
                                             AS VARCHAR)
       END AS responses_tool_json,
       CASE tool
           WHEN 'retrieval' THEN 'v1 retrieval read the assistant''s ' || len(file_ids)
                || ' file(s) directly: add them to a vector store and name it in vector_store_ids; it is then billed per GiB-day, plus a fee per file_search call'
           WHEN 'file_search' THEN 'the same vector stores: their storage is billed once whichever API reads them, plus a fee per file_search call'
           WHEN 'code_interpreter' THEN 'a container instead of the thread''s session: {"type": "auto"} starts one, its id reuses it; billed per 20-minute container session'
           WHEN 'function' THEN 'the same function, flattened: name, description and parameters at the top level of the tool, strict by default; results go back as function_call_output items'
           ELSE 'no tools: the instructions and model move to the response'
       END AS note,
       vector_store_ids, file_ids
FROM a;

-- Vector stores and who reads them: the Assistants side (assistants' and threads'
-- tool_resources, the runs of those) and the Responses side (file_search calls). `used_by` is
-- `assistants`, `responses` or `both`; a store's storage is one fact whichever side reads it.
CREATE OR REPLACE VIEW migration_vector_stores AS
WITH u AS (
    SELECT vector_store_id,
           count(DISTINCT id) FILTER (WHERE via = 'assistant') AS assistants,
           count(DISTINCT id) FILTER (WHERE via = 'thread') AS threads,
           count(DISTINCT id) FILTER (WHERE via = 'run') AS runs,
           max(used_at) FILTER (WHERE via = 'run') AS last_run_at,
           count(DISTINCT response_id) FILTER (WHERE side = 'responses') AS responses,
           count(DISTINCT id) FILTER (WHERE side = 'responses') AS file_search_calls,
           max(used_at) FILTER (WHERE side = 'responses') AS last_response_at,
           bool_or(side = 'assistants') AS by_assistants, bool_or(side = 'responses') AS by_responses
    FROM vector_store_uses GROUP BY vector_store_id
),
storage AS (
    SELECT vector_store_id, sum(usd) AS storage_usd FROM vector_store_storage_daily GROUP BY ALL
)
SELECT u.vector_store_id, a.name, a.key_fingerprint,
       CASE WHEN u.by_assistants AND u.by_responses THEN 'both' WHEN u.by_responses THEN 'responses'
            ELSE 'assistants' END AS used_by,
       u.assistants, u.threads, u.runs, u.last_run_at, u.responses, u.file_search_calls, u.last_response_at,
       a.billed, a.usage_gib, coalesce(s.storage_usd, 0) AS storage_usd, a.projected_daily_usd
FROM u
LEFT JOIN vector_store_activity a USING (vector_store_id)
LEFT JOIN storage s USING (vector_store_id);
