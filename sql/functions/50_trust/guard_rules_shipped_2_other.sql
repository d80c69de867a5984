-- The guard rules farmops ships for fake delimiters, obfuscation, exfiltration and
-- secrets (this file also retires shipped rules of a category no file ships any more),
-- re-seeded on every migrate (idempotent) so that a
-- better pattern ships with the package, without a migration. Shipped rows
-- (created_by = 'shipped') are inserted or updated by name and removed when no
-- longer shipped; 'enabled' is left as the operator set it, and rules the operator
-- added (any other created_by) are never touched.
--
-- Patterns are PostgreSQL AREs matched newline-sensitively against
-- farmops.normalize_untrusted_text(): lower case, single spaces, look-alikes folded;
-- each decoded segment and each signal marker on its own line. They name the
-- attacker's objects (instructions, system prompt, guardrails, credentials), not
-- verbs alone: "ignore the weak birds in pen 2" and "override the feed schedule"
-- are farm work.
--
-- A pattern is one token that cannot be wrapped, so long lines are allowed here only:
-- sqlfluff:max_line_length:1000

WITH shipped (name, category, stages, action, pattern) AS (
    VALUES
    -- fake delimiters and chat-template tokens
    (
        'fd_chat_template_tokens', 'fake_delimiters', '{input,retrieved}', 'block',
        $re$<\|[a-z_ ]{2,40}\|>|\m(im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\M$re$
    ),
    (
        'fd_role_tags', 'fake_delimiters', '{input,retrieved}', 'block',
        $re$\[ ?/?(inst|sys|system|assistant|user) ?\]|<</?sys>>|</?(system|sys|instructions?|admin|developer|assistant)>|"role" ?: ?"(system|developer|assistant)"|\{\{ ?(system|user|assistant)\M$re$
    ),
    (
        'fd_role_headers', 'fake_delimiters', '{input,retrieved}', 'block',
        $re$(^| )#{1,6} ?(system|assistant|developer|admin|instruction|response|human|new (system )?(message|instructions?|prompt)|system (message|prompt|override|note))\M ?:$re$
    ),
    (
        'fd_conversation_transcript', 'fake_delimiters', '{input,retrieved}', 'flag',
        $re$\m(human|user) ?: .*\m(assistant|ai) ?:$re$
    ),
    (
        'fd_boundary_markers', 'fake_delimiters', '{input,retrieved}', 'block',
        $re$\m(end|begin|start|beginning|close)( of)?( the)? (system|user|developer|assistant) (prompt|message|input|instructions|turn|context)\M$re$
    ),
    -- obfuscation: signals from normalize_untrusted_text and instructions to decode
    (
        'ob_hidden_tag_text', 'obfuscation', '{input,retrieved,output}', 'block',
        $re$\uE000signal:hidden_tag_text\uE000$re$
    ),
    (
        'ob_character_tricks', 'obfuscation', '{input,retrieved}', 'flag',
        $re$\uE000signal:(zero_width_in_word|mixed_script_word)\uE000$re$
    ),
    (
        'ob_encoded_text', 'obfuscation', '{input,retrieved}', 'flag',
        $re$\uE000signal:encoded_text\uE000$re$
    ),
    (
        'ob_decode_and_follow', 'obfuscation', '{input,retrieved}', 'block',
        $re$\m(decode|decipher|decrypt|translate|convert|interpret|reverse|unscramble|read)\M[^.!?]*\m(base ?64|hex(adecimal)?|rot ?-?(13|ie|i3|1e)|binary|morse|caesar|cipher|backwards|reversed?|encoded|encrypted|this string)\M[^.!?]*\m(follow|execute|run|obey|act on|comply|perform|carry out|do what)|\m(base ?64|hex|rot ?-?(13|ie|i3|1e)|encoded|encrypted|cipher)\M[^.!?]*\m(decode|decipher|decrypt)\M[^.!?]*\m(follow|execute|run|obey|act on|comply|do what)\M$re$
    ),
    (
        'ob_squashed_phrases', 'obfuscation', '{input,retrieved}', 'block',
        $re$(ignore|disregard|forget|bypass|override)(all|any|every|your|the|my|of|previous|prior|above|earlier|system|safety)+(instructions?|rules|prompts?|guidelines|guardrails|filters)|(reveal|print|show|repeat|output|leak)(me|us)?(all|the|your|its|full|entire)*(system|hidden|initial|secret)(prompt|instructions|message)|(youare|youre|actas|pretendtobe|roleplayas)(now)?(an?|the)?(unrestricted|unfiltered|uncensored|jailbroken|evil|dan)$re$
    ),
    (
        'ob_hidden_channel', 'obfuscation', '{input,retrieved}', 'flag',
        $re$\mrot ?-?(13|ie|i3|1e)\M|\mhidden (commands?|instructions?|prompts?|orders?)\M|\m(first|last) (letters?|characters?|words?) of (each|every) (line|word|sentence|paragraph)\M$re$
    ),
    -- data exfiltration
    (
        'dx_markdown_image_with_query', 'data_exfiltration', '{input,retrieved,output}', 'block',
        $re$!\[[^]]*\] ?\( ?(https?:)?//[^) ]*\?[^) ]*=|<img[^>]*src ?= ?["']?(https?:)?//[^"' >]*\?$re$
    ),
    (
        'dx_url_with_placeholder', 'data_exfiltration', '{input,retrieved,output}', 'flag',
        $re$[?&][a-z0-9_-]{1,30}= ?(\{|\$\{|%7b|\[[a-z_ ]+\]|<[a-z_ ]+>|followed by|insert_|your_|user_)$re$
    ),
    (
        'dx_send_data_out', 'data_exfiltration', '{input,retrieved}', 'block',
        $re$\m(send|post|upload|forward|email|e-mail|mail|transmit|exfiltrate|leak|submit|copy|sync|share|deliver|append|include|encode)\M[^.!?]*\m(conversation|chat( history| log)?|history|previous messages?|messages so far|every( previous)? message|system prompt|prompt|instructions|api[ _-]?keys?|passwords?|credentials|secrets?|tokens?|private keys?|session)\M[^.!?]*\m(to|into|at|via|on|with) (https?://|www\.|[a-z0-9._%+-]+@[a-z0-9.-]+|[a-z0-9-]+\.[a-z0-9.-]*(com|net|org|io|xyz|ru|cn|example|site|top|app|dev|me)\M|(this|that|the following|my|our|an?) ([a-z]+ )?(url|link|address|webhook|endpoint|server|email|site|inbox))$re$
    ),
    (
        'dx_known_collectors', 'data_exfiltration', '{input,retrieved,output}', 'flag',
        $re$\m(webhook\.site|requestbin|pipedream\.net|ngrok(-free)?\.(io|app)|burpcollaborator|interact\.sh|oast\.(pro|live|site|fun|me|online)|canarytokens)$re$
    ),
    -- secrets and credentials in the model's output
    (
        'sec_aws_access_key', 'secrets', '{output}', 'block',
        $re$\m(akia|asia)[0-9a-z]{16}\M|\maws_?secret_?access_?key\M$re$
    ),
    (
        'sec_private_key', 'secrets', '{output}', 'block',
        $re$-----begin ([a-z0-9]+ )*private key( block)?-----$re$
    ),
    (
        'sec_api_tokens', 'secrets', '{output}', 'block',
        $re$\msk[-_](live[-_]|test[-_]|proj[-_]|ant[-_])?[0-9a-z_-]{20,}|\mgh[pousr]_[0-9a-z]{30,}|\mxox[abprs]-[0-9a-z-]{10,}|\maiza[0-9a-z_-]{35}|\meyj[0-9a-z_-]{8,}\.eyj[0-9a-z_-]{8,}\.[0-9a-z_-]{8,}|\mbearer [0-9a-z._~+/-]{20,}$re$
    ),
    (
        'sec_password_value', 'secrets', '{output}', 'block',
        $re$\m(password|passwd|pwd|passcode|pass ?phrase)\M( for [a-z0-9 ._-]{1,30})? ?(:|=|is|was) ?["']?[^ "']*([a-z][^ "']*[0-9]|[0-9][^ "']*[a-z])[^ "']*|\m(postgres(ql)?|mysql|mongodb(\+srv)?|redis|amqps?|mssql|sqlserver)://[^:/ @]+:[^@ /]+@$re$
    )
),

upserted AS (
    INSERT INTO farmops.guard_rules AS g (name, category, stages, action, pattern, created_by)
    SELECT
        s.name,
        s.category,
        s.stages::text[] AS stages,
        s.action,
        s.pattern,
        'shipped' AS created_by
    FROM shipped AS s
    ON CONFLICT (name) DO UPDATE
        SET
            category = excluded.category,
            stages = excluded.stages,
            action = excluded.action,
            pattern = excluded.pattern
        WHERE
        g.created_by = 'shipped'
        AND (g.category, g.stages, g.action, g.pattern)
        IS DISTINCT FROM (excluded.category, excluded.stages, excluded.action, excluded.pattern)
    RETURNING g.name
)

-- Each shipped-rules file owns its categories (the files stay small enough to lint).
DELETE FROM farmops.guard_rules AS g
WHERE
    g.created_by = 'shipped'
    AND g.name NOT IN (SELECT s.name FROM shipped AS s)
    AND (
        g.category IN ('fake_delimiters', 'obfuscation', 'data_exfiltration', 'secrets')
        OR g.category NOT IN (
            'instruction_override', 'role_play', 'authority_bypass', 'system_prompt_extraction',
            'fake_delimiters', 'obfuscation', 'data_exfiltration', 'secrets'
        )
    );
