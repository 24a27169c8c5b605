-- Public views of the audit store: the product's SQL interface.
--
-- The raw tables (one per fact class in proxy/facts.py FACT_TYPES, named by its TABLE) are append-only
-- observations: every time the proxy saw an object it wrote a row. These views fold them into
-- current state. Rules shared by all of them:
--   * replay safety: a journal replay re-parses an exchange into the very same facts (same
--     exchange_id, same seq), so every view first drops duplicate (exchange_id, seq) rows;
--   * "latest" = the last observation in (terminal-state-first, observed_at, exchange_id, seq)
--     order, so a late-arriving poll never moves a finished run back to in_progress;
--   * timestamps that never change once set (created_at, started_at, completed_at, ...) are the
--     first non-null value seen; counters and sizes are the latest non-null value seen.
-- Every view works on empty tables.

-- One row per exchange (request/response) the proxy answered or made itself.
CREATE OR REPLACE VIEW exchanges AS
SELECT * FROM exchange_log
QUALIFY row_number() OVER (PARTITION BY exchange_id ORDER BY observed_at) = 1;

-- The API generation of each client call, what a migration is counted in: `assistants_v1`,
-- `assistants_v2`, `responses` (the Responses and Conversations APIs), `foundry_agents` (Azure AI
-- Foundry Agent Service projects, whatever Assistants version they serve), and `shared`
-- for the files, uploads and vector stores both generations read. Calls of no generation (`other`
-- paths) are left out.
CREATE OR REPLACE VIEW exchange_generations AS
SELECT * FROM (
    SELECT exchange_id, started_at, key_fingerprint, sdk, operation, provider,
           CASE WHEN api = 'foundry_agents' OR provider = 'azure.ai.agents' THEN 'foundry_agents'
                WHEN api IN ('responses', 'conversations') THEN 'responses'
                WHEN api_version = 'v1' OR v1_semantics THEN 'assistants_v1'
                WHEN split_part(operation, '.', 1) IN ('files', 'uploads', 'vector_stores') THEN 'shared'
                WHEN api = 'assistants' THEN 'assistants_v2'
           END AS api
    FROM exchanges WHERE origin = 'client'
)
WHERE api IS NOT NULL;

-- One row per run, folded from every snapshot (create, polls, list, cancel, tool outputs, stream events).
CREATE OR REPLACE VIEW runs AS
WITH snaps AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM run_snapshots
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY run_id
            ORDER BY CASE WHEN status IN ('completed', 'failed', 'cancelled', 'expired', 'incomplete') THEN 1 ELSE 0 END,
                     observed_at, exchange_id, seq
        ) AS pos,
        CASE WHEN source = 'retrieve' THEN
            lag(status) OVER (PARTITION BY run_id, source = 'retrieve' ORDER BY observed_at, exchange_id, seq)
        END AS prev_poll_status
    FROM snaps
),
folded AS (
    SELECT
        run_id,
        arg_max(thread_id, pos) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
        arg_max(assistant_id, pos) FILTER (WHERE assistant_id IS NOT NULL) AS assistant_id,
        arg_max(model, pos) FILTER (WHERE model IS NOT NULL) AS model,
        arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
        CASE WHEN bool_or(api_version = 'v1') THEN 'v1'
             ELSE arg_max(api_version, pos) FILTER (WHERE api_version IS NOT NULL) END AS api_version,
        min(created_at) AS created_at,
        min(started_at) AS started_at,
        min(completed_at) AS completed_at,
        min(failed_at) AS failed_at,
        min(cancelled_at) AS cancelled_at,
        min(expires_at) AS expires_at,
        arg_max(last_error_code, pos) FILTER (WHERE last_error_code IS NOT NULL) AS last_error_code,
        arg_max(last_error_message, pos) FILTER (WHERE last_error_message IS NOT NULL) AS last_error_message,
        arg_max(incomplete_reason, pos) FILTER (WHERE incomplete_reason IS NOT NULL) AS incomplete_reason,
        arg_max(prompt_tokens, pos) FILTER (WHERE prompt_tokens IS NOT NULL) AS prompt_tokens,
        arg_max(completion_tokens, pos) FILTER (WHERE completion_tokens IS NOT NULL) AS completion_tokens,
        arg_max(total_tokens, pos) FILTER (WHERE total_tokens IS NOT NULL) AS total_tokens,
        -- '' when the latest usage the run reported was sane, so a refused one shows until replaced
        arg_max(coalesce(usage_invalid, ''), pos) FILTER (
            WHERE usage_invalid IS NOT NULL OR prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL
               OR total_tokens IS NOT NULL) AS usage_invalid,
        arg_max(tools, pos) FILTER (WHERE tools IS NOT NULL) AS tools,
        coalesce(bool_or(streamed), false) AS streamed,
        count(*) FILTER (WHERE source = 'retrieve') AS poll_count,
        count(*) FILTER (WHERE source = 'retrieve' AND status = prev_poll_status) AS polls_unchanged,
        count(*) FILTER (WHERE status = 'requires_action') > 0 AS required_action,
        max(required_action_count) AS max_required_action_count,
        arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
        arg_max(project, pos) FILTER (WHERE project IS NOT NULL) AS project,
        arg_max(instructions_chars, pos) FILTER (WHERE instructions_chars IS NOT NULL) AS instructions_chars,
        arg_max(instructions, pos) FILTER (WHERE instructions IS NOT NULL) AS instructions,
        count(*) AS snapshot_count,
        count(DISTINCT exchange_id) AS exchange_count,
        min(observed_at) AS first_seen_at,
        max(observed_at) AS last_seen_at
    FROM ordered
    GROUP BY run_id
)
SELECT
    run_id, thread_id, assistant_id, model, status, api_version,
    created_at, started_at, completed_at, failed_at, cancelled_at, expires_at,
    epoch(started_at) - epoch(created_at) AS queue_seconds,
    epoch(coalesce(completed_at, failed_at, cancelled_at)) - epoch(started_at) AS run_seconds,
    last_error_code, incomplete_reason,
    prompt_tokens, completion_tokens, total_tokens, nullif(usage_invalid, '') AS usage_invalid,
    streamed, poll_count, polls_unchanged,
    status IN ('completed', 'failed', 'cancelled', 'expired', 'incomplete') AS terminal,
    last_error_message, tools, required_action, max_required_action_count, key_fingerprint,
    instructions_chars, instructions, snapshot_count, exchange_count, first_seen_at, last_seen_at, project
FROM folded;

-- One row per run step.
CREATE OR REPLACE VIEW run_steps AS
WITH snaps AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM step_snapshots
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY step_id
            ORDER BY CASE WHEN status IN ('completed', 'failed', 'cancelled', 'expired') THEN 1 ELSE 0 END,
                     observed_at, exchange_id, seq
        ) AS pos
    FROM snaps
)
SELECT
    step_id,
    arg_max(run_id, pos) FILTER (WHERE run_id IS NOT NULL) AS run_id,
    arg_max(thread_id, pos) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
    arg_max(assistant_id, pos) FILTER (WHERE assistant_id IS NOT NULL) AS assistant_id,
    arg_max(type, pos) FILTER (WHERE type IS NOT NULL) AS type,
    arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
    min(created_at) AS created_at,
    min(completed_at) AS completed_at,
    min(failed_at) AS failed_at,
    min(cancelled_at) AS cancelled_at,
    min(expired_at) AS expired_at,
    epoch(coalesce(min(completed_at), min(failed_at), min(cancelled_at), min(expired_at))) - epoch(min(created_at)) AS step_seconds,
    arg_max(last_error_code, pos) FILTER (WHERE last_error_code IS NOT NULL) AS last_error_code,
    arg_max(prompt_tokens, pos) FILTER (WHERE prompt_tokens IS NOT NULL) AS prompt_tokens,
    arg_max(completion_tokens, pos) FILTER (WHERE completion_tokens IS NOT NULL) AS completion_tokens,
    arg_max(total_tokens, pos) FILTER (WHERE total_tokens IS NOT NULL) AS total_tokens,
    nullif(arg_max(coalesce(usage_invalid, ''), pos) FILTER (
        WHERE usage_invalid IS NOT NULL OR prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL
           OR total_tokens IS NOT NULL), '') AS usage_invalid,
    arg_max(message_id, pos) FILTER (WHERE message_id IS NOT NULL) AS message_id,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY step_id;

-- One row per tool call, merging what the step said, what the run's required_action asked for and
-- what the client submitted (submit_tool_outputs): the step's view of a call wins where both exist.
CREATE OR REPLACE VIEW tool_calls AS
WITH calls AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM tool_call_log
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY tool_call_id
            ORDER BY CASE source WHEN 'step' THEN 2 WHEN 'required_action' THEN 1 ELSE 0 END,
                     observed_at, exchange_id, seq
        ) AS pos
    FROM calls
)
SELECT
    tool_call_id,
    arg_max(step_id, pos) FILTER (WHERE step_id IS NOT NULL) AS step_id,
    arg_max(run_id, pos) FILTER (WHERE run_id IS NOT NULL) AS run_id,
    arg_max(thread_id, pos) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
    arg_max(type, pos) FILTER (WHERE type IS NOT NULL) AS type,
    arg_max(function_name, pos) FILTER (WHERE function_name IS NOT NULL) AS function_name,
    arg_max(arguments_chars, pos) FILTER (WHERE arguments_chars IS NOT NULL) AS arguments_chars,
    arg_max(arguments, pos) FILTER (WHERE arguments IS NOT NULL) AS arguments,
    coalesce(arg_max(output_chars, pos) FILTER (WHERE output_chars IS NOT NULL AND source = 'tool_output'),
             arg_max(output_chars, pos) FILTER (WHERE output_chars IS NOT NULL)) AS output_chars,
    coalesce(arg_max(output, pos) FILTER (WHERE output IS NOT NULL AND source = 'tool_output'),
             arg_max(output, pos) FILTER (WHERE output IS NOT NULL)) AS output,
    arg_max(code_input_chars, pos) FILTER (WHERE code_input_chars IS NOT NULL) AS code_input_chars,
    arg_max(code_input, pos) FILTER (WHERE code_input IS NOT NULL) AS code_input,
    arg_max(code_outputs, pos) FILTER (WHERE code_outputs IS NOT NULL) AS code_outputs,
    arg_max(ranker, pos) FILTER (WHERE ranker IS NOT NULL) AS ranker,
    arg_max(score_threshold, pos) FILTER (WHERE score_threshold IS NOT NULL) AS score_threshold,
    arg_max(result_count, pos) FILTER (WHERE result_count IS NOT NULL) AS result_count,
    bool_or(source = 'step') AS seen_in_step,
    bool_or(source = 'required_action') AS required_action,
    bool_or(source = 'tool_output') AS output_submitted,
    min(observed_at) FILTER (WHERE source = 'required_action') AS requested_at,
    min(observed_at) FILTER (WHERE source = 'tool_output') AS submitted_at,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY tool_call_id;

-- One row per file_search result (rank within its tool call), as last seen.
CREATE OR REPLACE VIEW file_search_results AS
SELECT tool_call_id, run_id, step_id, thread_id, rank, file_id, file_name, score, content_chars, content,
       observed_at, exchange_id
FROM file_search_result_log
QUALIFY row_number() OVER (PARTITION BY tool_call_id, rank ORDER BY observed_at DESC, exchange_id DESC) = 1;

-- One row per vector store: latest state, first creation time, deletion flag.
CREATE OR REPLACE VIEW vector_stores AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM vector_store_observations
),
ordered AS (
    SELECT *,
        row_number() OVER (PARTITION BY vector_store_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
)
SELECT
    vector_store_id,
    arg_max(name, pos) FILTER (WHERE name IS NOT NULL AND NOT deleted) AS name,
    arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
    arg_max(usage_bytes, pos) FILTER (WHERE usage_bytes IS NOT NULL) AS usage_bytes,
    arg_max(files_total, pos) FILTER (WHERE files_total IS NOT NULL) AS files_total,
    min(created_at) AS created_at,
    max(last_active_at) AS last_active_at,
    arg_max(expires_at, pos) FILTER (WHERE NOT deleted) AS expires_at,
    bool_or(deleted) AS deleted,
    max(observed_at) AS last_seen_at,
    arg_max(files_in_progress, pos) FILTER (WHERE files_in_progress IS NOT NULL) AS files_in_progress,
    arg_max(files_completed, pos) FILTER (WHERE files_completed IS NOT NULL) AS files_completed,
    arg_max(files_failed, pos) FILTER (WHERE files_failed IS NOT NULL) AS files_failed,
    arg_max(files_cancelled, pos) FILTER (WHERE files_cancelled IS NOT NULL) AS files_cancelled,
    arg_max(expires_after_anchor, pos) FILTER (WHERE NOT deleted) AS expires_after_anchor,
    arg_max(expires_after_days, pos) FILTER (WHERE NOT deleted) AS expires_after_days,
    min(observed_at) FILTER (WHERE deleted) AS deleted_at,
    arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
    min(observed_at) AS first_seen_at,
    count(*) AS observations
FROM ordered
GROUP BY vector_store_id;

-- Every observation of a vector store's size: the growth curve.
CREATE OR REPLACE VIEW vector_store_usage AS
SELECT DISTINCT ON (exchange_id, seq)
    vector_store_id, observed_at, usage_bytes, files_total, source, exchange_id
FROM vector_store_observations
WHERE usage_bytes IS NOT NULL;

-- One row per (vector store, file).
CREATE OR REPLACE VIEW vector_store_files AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM vector_store_file_observations
),
ordered AS (
    SELECT *,
        row_number() OVER (PARTITION BY vector_store_id, file_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
)
SELECT
    vector_store_id, file_id,
    arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
    arg_max(usage_bytes, pos) FILTER (WHERE usage_bytes IS NOT NULL) AS usage_bytes,
    arg_max(last_error_code, pos) FILTER (WHERE last_error_code IS NOT NULL) AS last_error_code,
    min(created_at) AS created_at,
    bool_or(deleted) AS deleted,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY vector_store_id, file_id;

-- One row per assistant.
CREATE OR REPLACE VIEW assistants AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM assistant_observations
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY assistant_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
)
SELECT
    assistant_id,
    arg_max(name, pos) FILTER (WHERE NOT deleted) AS name,
    arg_max(model, pos) FILTER (WHERE model IS NOT NULL) AS model,
    CASE WHEN bool_or(api_version = 'v1') THEN 'v1'
         ELSE arg_max(api_version, pos) FILTER (WHERE api_version IS NOT NULL) END AS api_version,
    arg_max(tools, pos) FILTER (WHERE NOT deleted) AS tools,
    arg_max(vector_store_ids, pos) FILTER (WHERE NOT deleted) AS vector_store_ids,
    arg_max(code_interpreter_file_ids, pos) FILTER (WHERE NOT deleted) AS code_interpreter_file_ids,
    arg_max(file_ids, pos) FILTER (WHERE NOT deleted) AS file_ids,
    min(created_at) AS created_at,
    bool_or(deleted) AS deleted,
    arg_max(instructions_chars, pos) FILTER (WHERE instructions_chars IS NOT NULL) AS instructions_chars,
    arg_max(instructions, pos) FILTER (WHERE instructions IS NOT NULL) AS instructions,
    arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY assistant_id;

-- One row per thread.
CREATE OR REPLACE VIEW threads AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, thread_id) * FROM thread_observations
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY thread_id ORDER BY deleted, observed_at, exchange_id) AS pos
    FROM obs
)
SELECT
    thread_id,
    min(created_at) AS created_at,
    arg_max(vector_store_ids, pos) FILTER (WHERE NOT deleted) AS vector_store_ids,
    arg_max(code_interpreter_file_ids, pos) FILTER (WHERE NOT deleted) AS code_interpreter_file_ids,
    bool_or(deleted) AS deleted,
    arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY thread_id;

-- One row per message: its latest (most complete) state.
CREATE OR REPLACE VIEW messages AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM message_observations
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY message_id
            ORDER BY CASE WHEN status IN ('completed', 'incomplete') THEN 1 ELSE 0 END, observed_at, exchange_id, seq
        ) AS pos
    FROM obs
)
SELECT
    message_id,
    arg_max(thread_id, pos) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
    arg_max(run_id, pos) FILTER (WHERE run_id IS NOT NULL) AS run_id,
    arg_max(assistant_id, pos) FILTER (WHERE assistant_id IS NOT NULL) AS assistant_id,
    arg_max(role, pos) FILTER (WHERE role IS NOT NULL) AS role,
    arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
    min(created_at) AS created_at,
    arg_max(content_chars, pos) FILTER (WHERE content_chars IS NOT NULL) AS content_chars,
    arg_max(content, pos) FILTER (WHERE content IS NOT NULL) AS content,
    arg_max(attachments, pos) FILTER (WHERE attachments IS NOT NULL) AS attachments,
    arg_max(file_ids, pos) AS file_ids,
    arg_max(annotations, pos) FILTER (WHERE annotations IS NOT NULL) AS annotations,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY message_id;

-- One row per uploaded file.
CREATE OR REPLACE VIEW files AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM file_observations
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY file_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
)
SELECT
    file_id,
    arg_max(filename, pos) FILTER (WHERE filename IS NOT NULL) AS filename,
    arg_max(purpose, pos) FILTER (WHERE purpose IS NOT NULL) AS purpose,
    arg_max(bytes, pos) FILTER (WHERE bytes IS NOT NULL) AS bytes,
    arg_max(status, pos) FILTER (WHERE status IS NOT NULL AND NOT deleted) AS status,
    min(created_at) AS created_at,
    bool_or(deleted) AS deleted,
    arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY file_id;

-- Every sighting of a file attached to (or detached from) an assistant or a message: a whole
-- assistant or message object says its full file list (known files missing from it are
-- detached), and the v1 /assistants/{id}/files and /messages/{id}/files calls say one file each.
CREATE OR REPLACE VIEW attached_file_events AS
WITH snapshots AS (
    SELECT 'assistant' AS owner, assistant_id AS owner_id, file_ids, observed_at, exchange_id, seq
    FROM (SELECT DISTINCT ON (exchange_id, seq) * FROM assistant_observations) WHERE NOT deleted
    UNION ALL
    SELECT 'message', message_id, file_ids, observed_at, exchange_id, seq
    FROM (SELECT DISTINCT ON (exchange_id, seq) * FROM message_observations)
),
calls AS (
    SELECT DISTINCT ON (exchange_id, seq) owner, owner_id, file_id, attached, observed_at, exchange_id, seq
    FROM attached_file_observations
),
known AS (
    SELECT DISTINCT owner, owner_id, file_id FROM (
        SELECT owner, owner_id, unnest(file_ids) AS file_id FROM snapshots
        UNION ALL SELECT owner, owner_id, file_id FROM calls
    )
)
SELECT k.owner, k.owner_id, k.file_id, list_contains(s.file_ids, k.file_id) AS attached,
       s.observed_at, s.exchange_id, s.seq
FROM snapshots s JOIN known k USING (owner, owner_id)
UNION ALL
SELECT owner, owner_id, file_id, attached, observed_at, exchange_id, seq FROM calls;

-- One row per stretch of time a file was seen attached: from a sighting that says attached to
-- the next sighting of that (owner, file); detached_at is NULL while it is still attached.
CREATE OR REPLACE VIEW attached_file_intervals AS
SELECT owner, owner_id, file_id, attached_at, detached_at FROM (
    SELECT owner, owner_id, file_id, attached, observed_at AS attached_at,
           lead(observed_at) OVER (PARTITION BY owner, owner_id, file_id ORDER BY observed_at, exchange_id, seq)
               AS detached_at
    FROM attached_file_events
)
WHERE attached AND (detached_at IS NULL OR detached_at > attached_at);

-- One row per Responses API response, folded from every snapshot (create, polls, cancel, delete,
-- stream events) like `runs`. `polls` counts the retrieves up to and including the first that
-- saw the response finished; later retrieves are in `retrieves` only.
CREATE OR REPLACE VIEW responses AS
WITH snaps AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM response_snapshots
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY response_id
            ORDER BY CASE WHEN status IN ('completed', 'failed', 'incomplete', 'cancelled') THEN 1 ELSE 0 END,
                     observed_at, exchange_id, seq
        ) AS pos,
        min(observed_at) FILTER (WHERE status IN ('completed', 'failed', 'incomplete', 'cancelled'))
            OVER (PARTITION BY response_id) AS finished_seen_at
    FROM snaps
),
folded AS (
    SELECT
        response_id,
        arg_max(model, pos) FILTER (WHERE model IS NOT NULL) AS model,
        arg_max(status, pos) FILTER (WHERE status IS NOT NULL) AS status,
        arg_max(conversation_id, pos) FILTER (WHERE conversation_id IS NOT NULL) AS conversation_id,
        arg_max(previous_response_id, pos) FILTER (WHERE previous_response_id IS NOT NULL) AS previous_response_id,
        arg_max(background, pos) FILTER (WHERE background IS NOT NULL) AS background,
        coalesce(bool_or(streamed), false) AS streamed,
        count(*) FILTER (WHERE source = 'retrieve'
                         AND (finished_seen_at IS NULL OR observed_at <= finished_seen_at)) AS polls,
        count(*) FILTER (WHERE source = 'retrieve') AS retrieves,
        arg_max(input_tokens, pos) FILTER (WHERE input_tokens IS NOT NULL) AS input_tokens,
        arg_max(cached_input_tokens, pos) FILTER (WHERE cached_input_tokens IS NOT NULL) AS cached_input_tokens,
        arg_max(output_tokens, pos) FILTER (WHERE output_tokens IS NOT NULL) AS output_tokens,
        arg_max(reasoning_tokens, pos) FILTER (WHERE reasoning_tokens IS NOT NULL) AS reasoning_tokens,
        arg_max(total_tokens, pos) FILTER (WHERE total_tokens IS NOT NULL) AS total_tokens,
        -- '' when the latest usage the response reported was sane, so a refused one shows until replaced
        arg_max(coalesce(usage_invalid, ''), pos) FILTER (
            WHERE usage_invalid IS NOT NULL OR input_tokens IS NOT NULL OR output_tokens IS NOT NULL) AS usage_invalid,
        min(created_at) AS created_at,
        min(completed_at) AS completed_at,
        arg_max(error_code, pos) FILTER (WHERE error_code IS NOT NULL) AS error_code,
        arg_max(error_message, pos) FILTER (WHERE error_message IS NOT NULL) AS error_message,
        arg_max(incomplete_reason, pos) FILTER (WHERE incomplete_reason IS NOT NULL) AS incomplete_reason,
        -- the create request's flag (a retrieve can only echo it)
        coalesce(arg_min(store, pos) FILTER (WHERE store IS NOT NULL AND source IN ('create', 'stream')),
                 arg_max(store, pos) FILTER (WHERE store IS NOT NULL)) AS store,
        bool_or(deleted) AS deleted,
        min(observed_at) FILTER (WHERE deleted) AS deleted_at,
        arg_max(truncated, pos) FILTER (WHERE NOT deleted) AS truncated,
        arg_max(tools, pos) FILTER (WHERE NOT deleted) AS tools,
        arg_max(output_types, pos) FILTER (WHERE NOT deleted) AS output_types,
        arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
        arg_min(sdk, pos) FILTER (WHERE sdk IS NOT NULL) AS sdk,
        arg_min(provider, pos) FILTER (WHERE provider IS NOT NULL) AS provider,
        arg_min(api_version, pos) FILTER (WHERE api_version IS NOT NULL) AS api_version,
        arg_max(instructions_chars, pos) FILTER (WHERE instructions_chars IS NOT NULL) AS instructions_chars,
        arg_max(instructions, pos) FILTER (WHERE instructions IS NOT NULL) AS instructions,
        count(*) AS snapshot_count,
        count(DISTINCT exchange_id) AS exchange_count,
        min(observed_at) AS first_seen_at,
        max(observed_at) AS last_seen_at
    FROM ordered
    GROUP BY response_id
)
SELECT
    response_id AS id, response_id, model, status, conversation_id, previous_response_id, background, streamed,
    polls, retrieves, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
    nullif(usage_invalid, '') AS usage_invalid, created_at, completed_at,
    epoch(completed_at) - epoch(created_at) AS response_seconds,
    error_code, error_message, incomplete_reason, store, deleted, deleted_at, truncated,
    status IN ('completed', 'failed', 'incomplete', 'cancelled') AS terminal,
    tools, output_types, key_fingerprint, sdk, provider, api_version, instructions_chars, instructions,
    snapshot_count, exchange_count, first_seen_at, last_seen_at
FROM folded;

-- One row per tool call of a response, merging what its output items said (JSON, stream events)
-- with the `function_call_output` a later request sent back for it.
CREATE OR REPLACE VIEW response_tool_calls AS
WITH calls AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM response_tool_call_log
),
ordered AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY call_id
            ORDER BY CASE WHEN status IN ('completed', 'failed', 'incomplete') THEN 1 ELSE 0 END,
                     observed_at, exchange_id, seq
        ) AS pos,
        source = 'function_call_output' AS sent_back
    FROM calls
)
SELECT
    arg_max(response_id, pos) FILTER (WHERE NOT sent_back AND response_id IS NOT NULL) AS response_id,
    call_id,
    arg_max(item_id, pos) FILTER (WHERE NOT sent_back AND item_id IS NOT NULL) AS item_id,
    coalesce(arg_max(type, pos) FILTER (WHERE NOT sent_back), arg_max(type, pos)) AS type,
    arg_max(item_type, pos) FILTER (WHERE NOT sent_back AND item_type IS NOT NULL) AS item_type,
    arg_max(status, pos) FILTER (WHERE NOT sent_back AND status IS NOT NULL) AS status,
    arg_max(name, pos) FILTER (WHERE name IS NOT NULL) AS name,
    arg_max(server_label, pos) FILTER (WHERE server_label IS NOT NULL) AS server_label,
    arg_max(vector_store_ids, pos) FILTER (WHERE NOT sent_back AND len(vector_store_ids) > 0) AS vector_store_ids,
    arg_max(container_id, pos) FILTER (WHERE container_id IS NOT NULL) AS container_id,
    arg_max(results_count, pos) FILTER (WHERE results_count IS NOT NULL) AS results_count,
    arg_max(queries_count, pos) FILTER (WHERE queries_count IS NOT NULL) AS queries_count,
    arg_max(arguments_chars, pos) FILTER (WHERE arguments_chars IS NOT NULL) AS arguments_chars,
    arg_max(arguments, pos) FILTER (WHERE arguments IS NOT NULL) AS arguments,
    coalesce(arg_max(output_chars, pos) FILTER (WHERE sent_back AND output_chars IS NOT NULL),
             arg_max(output_chars, pos) FILTER (WHERE output_chars IS NOT NULL)) AS output_chars,
    coalesce(arg_max(output, pos) FILTER (WHERE sent_back AND output IS NOT NULL),
             arg_max(output, pos) FILTER (WHERE output IS NOT NULL)) AS output,
    arg_max(queries, pos) FILTER (WHERE queries IS NOT NULL) AS queries,
    arg_max(error, pos) FILTER (WHERE error IS NOT NULL) AS error,
    arg_max(error_type, pos) FILTER (WHERE error_type IS NOT NULL) AS error_type,
    arg_max(error_code, pos) FILTER (WHERE error_code IS NOT NULL) AS error_code,
    bool_or(sent_back) AS output_submitted,
    arg_min(response_id, pos) FILTER (WHERE sent_back AND response_id IS NOT NULL) AS output_response_id,
    min(observed_at) FILTER (WHERE sent_back) AS submitted_at,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY call_id;

-- One row per result of a response's file_search call (rank within the call), as last seen.
CREATE OR REPLACE VIEW response_file_search_results AS
SELECT response_id, call_id, rank, file_id, filename, score, text_chars, text, observed_at, exchange_id
FROM response_file_search_result_log
QUALIFY row_number() OVER (PARTITION BY call_id, rank ORDER BY observed_at DESC, exchange_id DESC) = 1;

-- One row per conversation item, as last seen.
CREATE OR REPLACE VIEW conversation_items AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM conversation_item_observations
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY conversation_id, item_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
)
SELECT
    conversation_id, item_id,
    arg_max(type, pos) FILTER (WHERE type IS NOT NULL) AS type,
    arg_max(role, pos) FILTER (WHERE role IS NOT NULL) AS role,
    min(created_at) AS created_at,
    bool_or(deleted) AS deleted,
    min(observed_at) AS first_seen_at,
    max(observed_at) AS last_seen_at
FROM ordered
GROUP BY conversation_id, item_id;

-- One row per conversation: seen through the Conversations API, or only named by responses made in it.
CREATE OR REPLACE VIEW conversations AS
WITH obs AS (
    SELECT DISTINCT ON (exchange_id, seq) * FROM conversation_observations
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY conversation_id ORDER BY deleted, observed_at, exchange_id, seq) AS pos
    FROM obs
),
folded AS (
    SELECT
        conversation_id,
        min(created_at) AS created_at,
        bool_or(deleted) AS deleted,
        min(observed_at) FILTER (WHERE deleted) AS deleted_at,
        coalesce(sum(items_added), 0) AS items_created,
        arg_max(metadata_keys, pos) FILTER (WHERE metadata_keys IS NOT NULL AND NOT deleted) AS metadata_keys,
        arg_max(key_fingerprint, pos) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint,
        arg_min(provider, pos) FILTER (WHERE provider IS NOT NULL) AS provider,
        min(observed_at) AS first_seen_at,
        max(observed_at) AS last_seen_at
    FROM ordered
    GROUP BY conversation_id
),
linked AS (
    SELECT conversation_id, count(*) AS responses, min(key_fingerprint) AS key_fingerprint,
           min(provider) AS provider, min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at,
           max(created_at) AS last_response_at
    FROM responses WHERE conversation_id IS NOT NULL
    GROUP BY conversation_id
)
SELECT
    conversation_id AS id, conversation_id,
    f.created_at, coalesce(f.deleted, false) AS deleted, f.deleted_at, coalesce(f.items_created, 0) AS items_created,
    f.metadata_keys, coalesce(f.key_fingerprint, l.key_fingerprint) AS key_fingerprint,
    coalesce(f.provider, l.provider) AS provider, coalesce(l.responses, 0) AS responses, l.last_response_at,
    least(f.first_seen_at, l.first_seen_at) AS first_seen_at, greatest(f.last_seen_at, l.last_seen_at) AS last_seen_at
FROM folded f FULL OUTER JOIN linked l USING (conversation_id);
