-- Used by tests/analytics ONLY while analytics/views.sql (the parsing work) does not exist yet:
-- the public views' contract columns, folded from the raw fact tables in the simplest way.
CREATE OR REPLACE VIEW exchanges AS SELECT * FROM exchange_log;
CREATE OR REPLACE VIEW runs AS
SELECT run_id,
       arg_max(thread_id, observed_at) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
       arg_max(assistant_id, observed_at) FILTER (WHERE assistant_id IS NOT NULL) AS assistant_id,
       arg_max(model, observed_at) FILTER (WHERE model IS NOT NULL) AS model,
       arg_max(status, observed_at) AS status,
       arg_max(api_version, observed_at) AS api_version,
       min(created_at) AS created_at, min(started_at) AS started_at, max(completed_at) AS completed_at,
       max(failed_at) AS failed_at, max(cancelled_at) AS cancelled_at, max(expires_at) AS expires_at,
       NULL::DOUBLE AS queue_seconds, NULL::DOUBLE AS run_seconds,
       arg_max(last_error_code, observed_at) AS last_error_code,
       arg_max(incomplete_reason, observed_at) AS incomplete_reason,
       max(prompt_tokens) AS prompt_tokens, max(completion_tokens) AS completion_tokens, max(total_tokens) AS total_tokens,
       bool_or(streamed) AS streamed, count(*) FILTER (WHERE source = 'retrieve') AS poll_count
FROM run_snapshots GROUP BY run_id;
CREATE OR REPLACE VIEW run_steps AS
SELECT step_id, any_value(run_id) AS run_id, any_value(thread_id) AS thread_id, arg_max(type, observed_at) AS type,
       arg_max(status, observed_at) AS status, min(created_at) AS created_at, max(completed_at) AS completed_at,
       max(prompt_tokens) AS prompt_tokens, max(completion_tokens) AS completion_tokens
FROM step_snapshots GROUP BY step_id;
CREATE OR REPLACE VIEW tool_calls AS
SELECT tool_call_id, any_value(step_id) AS step_id, any_value(run_id) AS run_id, any_value(thread_id) AS thread_id,
       any_value(type) AS type, any_value(function_name) AS function_name
FROM tool_call_log GROUP BY tool_call_id;
CREATE OR REPLACE VIEW vector_store_usage AS
SELECT vector_store_id, observed_at, usage_bytes FROM vector_store_observations WHERE usage_bytes IS NOT NULL;
CREATE OR REPLACE VIEW vector_stores AS
SELECT vector_store_id, arg_max(name, observed_at) AS name, arg_max(status, observed_at) AS status,
       arg_max(usage_bytes, observed_at) FILTER (WHERE usage_bytes IS NOT NULL) AS usage_bytes,
       arg_max(files_total, observed_at) AS files_total, min(created_at) AS created_at,
       max(last_active_at) AS last_active_at, arg_max(expires_at, observed_at) AS expires_at,
       bool_or(deleted) AS deleted, max(observed_at) AS last_seen_at
FROM vector_store_observations GROUP BY vector_store_id;
