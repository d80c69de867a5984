-- Growing a run's hold ahead of its next model call, in the transaction of a tool step
-- (issue 11, goal 2): the governed run pipelines this after the tool's own call, so a tool
-- call costs no extra round trip for the extension. A hold that cannot grow must not undo
-- the tool's write, so a refusal is an answer here, not an error: the client's cover check
-- before the next call then calls extend_reservation, which raises as always.

CREATE OR REPLACE FUNCTION farmops.try_extend_reservation(
    p_run_id uuid,
    p_cover_input_tokens integer,
    p_cover_output_tokens integer,
    OUT held integer,
    OUT extended boolean,
    OUT refused text
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_before integer;
BEGIN
    -- The checks of extend_reservation raise as there (OF006, OF102, OF003, OF103, OF105): a
    -- wrong call is an error, only a hold the farm cannot pay for is an answer.
    PERFORM farmops._assert_given(p_run_id, 'run id');
    IF p_cover_input_tokens IS NULL OR p_cover_output_tokens IS NULL THEN
        RAISE EXCEPTION 'give the input and output tokens to cover' USING ERRCODE = 'OF006';
    END IF;
    v_before := (farmops._lock_run(v_farm, p_run_id, false, true)).credits_reserved;
    BEGIN
        held := (farmops.extend_reservation(
            p_run_id => p_run_id, p_cover_input_tokens => p_cover_input_tokens,
            p_cover_output_tokens => p_cover_output_tokens
        )).credits_reserved;
        extended := held > v_before;
    EXCEPTION WHEN SQLSTATE 'OF101' OR SQLSTATE 'OF402' OR SQLSTATE 'OF405' OR SQLSTATE 'OF411' THEN
        -- Not enough credits, a rate or token limit, a money budget: nothing was written.
        held := v_before;
        extended := false;
        refused := SQLSTATE;
    END;
END
$fn$;
COMMENT ON FUNCTION farmops.try_extend_reservation(uuid, integer, integer) IS
'The run''s driver (run_ai): extend_reservation by token bounds, where a hold the farm cannot grow is an answer '
'(refused = OF101 not enough credits, OF402 rate limited, OF405 over a token limit, OF411 over a budget; nothing '
'written, held unchanged) rather than an error, so that it can ride in the transaction of a tool step without '
'undoing it. held = the run''s hold after, extended = whether it grew. OF006, OF102, OF103, OF105, OF003 raise as '
'in extend_reservation.';
