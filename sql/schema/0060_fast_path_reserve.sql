-- The reservation moved into one private core (farmops._reserve, in
-- sql/functions/20_credits/reserve.sql); its two former private helpers go.
-- They were never granted to the application, so no client can depend on them.
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._reserve_credits_step(uuid, text, text, text, integer, text, interval, text);
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._replayed_run(uuid, text, text, text, integer);
