-- The guard rules farmops ships, re-seeded on every migrate (idempotent) so that a
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
    -- instruction override
    (
        'io_ignore_instructions', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(ignore|ignoring|disregard|forget|neglect|overlook|discard|drop|abandon|skip|bypass|override|overwrite|scratch|dismiss|never ?mind|set aside|put aside|throw out|pay no attention to|do ?not (follow|obey|listen to)|don'?t (follow|obey|listen to)|stop (following|obeying)|no longer (follow|obey))( [a-z0-9']+){0,3} ?(previous|prior|preceding|above|earlier|former|foregoing|initial|original|old|existing|current|given|system|developer|default|safety|all)( [a-z']+)? ?(instructions?|directives?|prompts?|rules|guidelines|guidance|directions|briefing|programming|configuration|setup|constraints|guardrails|context|training)\M|\m(ignore|disregard|forget|neglect|discard|abandon|bypass|override|scratch|dismiss|do ?not (follow|obey)|don'?t (follow|obey)|stop (following|obeying)) (your|its|the (assistant|ai|model|bot)'?s?) (instructions?|directives?|prompts?|rules|guidelines|programming|guardrails|system prompt)\M$re$
    ),
    (
        'io_ignore_everything_before', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(ignore|disregard|forget|scratch|dismiss|never ?mind|set aside|put aside|throw out)( all| everything| anything| whatever)?( that| which| you (were|have been|'ve been|are|got) (told|given|instructed|taught|programmed|configured|trained)( with)?|( was| is)? (said|written|stated|mentioned))*( the)? (above|earlier|previously|before|so far|up to now)( (text|message|content|conversation|lines?))?(?=[.,;:!?]|$| and | then | but | instead)|\m(ignore|disregard|forget|drop|scratch|dismiss|discard|never ?mind|set aside) (all|everything|anything|whatever)( [a-z]+){0,2} (came|comes|was|were|is|are|appears?|appeared|written|said|given) (before|above|earlier|previously|prior)\M$re$
    ),
    (
        'io_instructions_revoked', 'instruction_override', '{input,retrieved}', 'block',
        $re$(\m(instructions|directives|prompts?|programming)|\m(your|its|system|the (assistant|ai|model|bot)'?s?) (guidelines|guidance|directions|rules|configuration))\M( [a-z']+){0,4} (are|is|were|have been|has been) (now |hereby |officially )?(void|null|cancell?ed|revoked|obsolete|invalid|overridden|superseded|replaced|suspended|deprecated|lifted|no longer (valid|in effect|apply|applicable))\M|\m(everything|all|anything|whatever) you('ve| have)?( been)? (were )?(told|given|instructed|taught|programmed)\M[^.!?]* (no longer (applies|apply|matters|counts)|(is|are) (now )?(void|cancell?ed|revoked|obsolete|invalid))$re$
    ),
    (
        'io_reset_instructions', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(reset|clear|wipe|erase|delete|purge|flush|replace|rewrite)( all)? (your|its|the (ai|assistant|model|bot)'?s?)( [a-z-]+)? (instructions|rules|programming|guidelines|directives|memory|context|system prompt|prompt|training)\M$re$
    ),
    (
        'io_new_system_instructions', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(new|updated|revised|real|actual|true|hidden|secret|priority|override) (system|developer|admin|administrator|priority) (instructions?|directives?|prompt|message|policy|rules?|orders?)\M|\m(system|developer|admin|administrator|priority) (instructions?|directives?|message|policy|notice|note) ?: ?(the )?(previous|prior|assistant|ai|model|you|ignore|disregard)$re$
    ),
    (
        'io_new_task', 'instruction_override', '{input,retrieved}', 'flag',
        $re$\myour (real|true|actual|new|only|primary|secret|hidden) (task|job|goal|purpose|mission|objective|instructions?|orders?|directive)( now)? ?(is|are|:)$re$
    ),
    (
        'io_addresses_the_ai', 'instruction_override', '{retrieved}', 'block',
        $re$\m(ai|a\.i\.|ais|assistants?|chatbots?|bots?|language models?|llms?|gpts?|models?|agents?|automated (readers?|systems?|assistants?|agents?|tools?))( [a-z']+){0,4} ?[,:] ?(please )?(ignore|disregard|forget|do not|don'?t|you must|you should|you are|you're|you will|must|should|always|never|instead|stop|from (now|this point|here)|first|begin|send|print|reveal|output|repeat|pretend|act|approve|recommend|reply|respond|answer|grant|skip|bypass|your (real|true|actual|new|only|primary|secret) (task|job|goal|purpose|mission|instructions?))\M$re$
    ),
    (
        'io_if_you_are_an_ai', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(if|when|whenever|once) (you are |you're |you, )?(an?|the|any|some)? ?(ai|a\.i\.|artificial intelligence|language model|llm|chatbot|ai assistant|gpt|ai model|ai agent)( [a-z']+){0,3} (reads?|reading|sees?|seeing|process(es|ing)?|summari[sz](es|ing|e)?|pars(es|ing|e)|scans?|scanning|ingests?)\M$re$
    ),
    -- role play
    (
        'rp_unrestricted_persona', 'role_play', '{input,retrieved}', 'block',
        $re$\m(you are|you're|youre|you will be|you'll be|you become|become|act(ing)? as|pretend(ing)?( to be| you are| you're| that you are)|role-?play(ing)?( as)?|play(ing)? the (role|part) of|simulate|impersonate|behave (like|as)|respond as|imagine (you are|you're|being)|be|answer as|reply as|speak as|talk as)( now)?( an?| the| my| that)?( [a-z-]+){0,2} (unrestricted|unfiltered|uncensored|jailbroken|jailbreak|evil|rogue|malicious|amoral|unethical|immoral|unlimited|unbound|unconstrained|lawless|rule-?less|dan\M|(different|new|other|free|alternative|opposite|second) (ai|assistant|model|chatbot|gpt|llm|persona))$re$
    ),
    (
        'rp_persona_for_secrets', 'role_play', '{input,retrieved}', 'block',
        $re$\m(pretend|act|acting|roleplay|role-play|role play|imagine|play)\M[^.!?]*\m(read|tell|give|recite|say|share|whisper|sing)( me| us)?\M[^.!?]*\m(passwords?|api keys?|secrets?|credentials|tokens|system prompt|private keys?|license keys?|activation keys?)\M$re$
    ),
    (
        'rp_jailbreak_modes', 'role_play', '{input,retrieved}', 'block',
        $re$\m(developer|dev|god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil|chaos) mode\M|\m(debug|sudo|admin|administrator|maintenance|root|test|superuser) mode( is| has been)? (enabled|activated|engaged|unlocked)\M|\mdo anything now\M|\mdan\M ?(\(|,|which stands|mode|has no)$re$
    ),
    (
        'rp_ai_without_rules', 'role_play', '{input,retrieved}', 'block',
        $re$\m(ai|assistant|model|chatbot|bot|gpt|llm|persona|character|version of you|entity)\M[^.!?]*\m(with no|without( any)?|free (of|from)( all| any)?|with zero|(has|have|having) (no|zero)|ignoring( all| any)?|unbound by( any)?) (rules|restrictions|limits|limitations|filters|filtering|censorship|guidelines|ethics|morals|morality|content polic(y|ies)|safety|guardrails|boundaries)\M$re$
    ),
    (
        'rp_answer_without_rules', 'role_play', '{input,retrieved}', 'flag',
        $re$\m(respond|answer|reply|speak|talk|write|output|you)\M[^.!?]*\m(with no|without( any)?|free (of|from)|ignoring( all| any| your)?) (rules|restrictions|limits|limitations|filters|filtering|censorship|guidelines|ethics|morals|content polic(y|ies)|guardrails)\M$re$
    ),
    (
        'rp_stay_in_character', 'role_play', '{input,retrieved}', 'flag',
        $re$\m(stay|remain|keep|staying|remaining) (fully |always )?in character\M|\m(never )?break(ing)? character\M|\m(two|both|dual) (personas|personalities|characters)\M|\mlet'?s play a game (where|in which) you\M|\mrespond as (both|two)\M|\m(you are|you're) now [a-z]+ ?, (an?|the) ([a-z-]+ )?(ai|assistant|chatbot|model|bot)\M$re$
    ),
    -- authority bypass
    (
        'ab_claimed_authority', 'authority_bypass', '{input,retrieved}', 'flag',
        $re$\m(i am|i'm|im|this is|we are|as|speaking as) (your|the|an?|one of (your|the)) ?(developers?|creators?|programmers?|makers?|system administrators?|sysadmin|ai (team|administrator|engineer)s?|(openai|anthropic|aws|amazon|bedrock|meta|google|microsoft|farmops) (staff|employee|engineer|team|support|developer|admin|administrator|researcher|safety team|security team)s?)\M|\m(openai|anthropic|aws|amazon|farmops|security|safety|trust and safety|admin|it) (staff|team|support|engineers?) (here|speaking)\M$re$
    ),
    (
        'ab_disable_safety', 'authority_bypass', '{input,retrieved}', 'block',
        $re$\m(bypass|disable|turn off|switch off|deactivate|circumvent|evade|get around|work around|ignore|override|lift|remove|suspend)( (all|any|the|your|its|my|these|those))*( [a-z-]+)? (guardrails?|safeguards?|content polic(y|ies)|moderation|censorship|(safety|security|content|moderation|ethical|ethics|output|input|prompt|ai|injection) (filters?|guidelines|protocols?|restrictions|checks?|rules|settings|measures|polic(y|ies)|layers?|systems?|mechanisms?|features?))\M|\mrestrictions (are |have been )?(lifted|removed|disabled)\M$re$
    ),
    (
        'ab_skip_approval', 'authority_bypass', '{input,retrieved}', 'flag',
        $re$\m(bypass|skip|circumvent|get around|avoid)( the| any| all| human| manual)* (approvals?|approval (step|queue|process)|human review|review queue|sign-?off)\M$re$
    ),
    (
        'ab_privilege_escalation', 'authority_bypass', '{input,retrieved}', 'block',
        $re$\m(grant|give|assign|elevate|escalate|upgrade)( me| yourself| the (user|caller|sender)| my account| us)?( to)?( (admin|administrator|root|elevated|unrestricted|superuser|owner|god|sudo))+ (access|privileges?|rights|permissions?|role|level)\M|\m(admin|administrator|root|sudo|superuser|developer|elevated|unrestricted|god) (access|privileges?|rights|permissions?)( (is|are|has been|have been))? (granted|enabled|activated|unlocked|confirmed)\M|\m(system|admin|administrator|developer|root|emergency|security|priority|master|god) override\M|\m(elevate|escalate|upgrade|promote|make|set|change|switch)( me| my (role|account|access|permissions?|user))( to| into| as)?( an?)? (admin|administrator|root|superuser|sudo|god)\M$re$
    ),
    (
        'ab_authorized_to_bypass', 'authority_bypass', '{input,retrieved}', 'block',
        $re$\m(authori[sz]ed|cleared|sanctioned|permitted|allowed)( by [a-z ]+)? to (bypass|override|disable|circumvent|reveal|disregard|turn off|lift|ignore (your|the|all|any) (rules|instructions|guidelines|restrictions|filters))\M$re$
    ),
    (
        'ab_sudo', 'authority_bypass', '{input,retrieved}', 'flag',
        $re$\msudo\M$re$
    ),
    -- system prompt extraction
    (
        'spe_reveal_system_prompt', 'system_prompt_extraction', '{input,retrieved}', 'block',
        $re$\m(reveal|show|print|display|output|repeat|recite|tell|give|share|leak|dump|expose|disclose|divulge|read out|read back|list|write|spell out|copy|paste|provide|quote|summari[sz]e|translate|what(s| is| are| was| were))\M( [a-z']+){0,4} ((your|its|the (assistant|ai|bot|model)'?s?)( [a-z-]+){0,2} (prompts?|instructions|rules|guidelines|directives|configuration|config|programming|system message)|(system|hidden|secret|developer|internal|confidential|pre-?|meta|initial) ?(prompts?|instructions|directives|system message|guidelines))\M$re$
    ),
    (
        'spe_what_were_you_told', 'system_prompt_extraction', '{input,retrieved}', 'block',
        $re$\mwhat (were|are|have) you (been )?(told|instructed|programmed|given|trained to say)\M|\m(instructions|rules|prompts?|guidelines|directives) (were|have|did) you (been )?(given|told|get|got|receive|received|programmed)\M|\m(instructions|prompt|rules|guidelines|directives)( [a-z]+)? (did|have|has|were) (your|the) (developers?|creators?|makers?|programmers?|company|operators?|owners?|admins?)( [a-z]+)? (give|gave|given|set|write|wrote|provide|provided)\M|\m(prompts?|instructions|rules|guidelines|message)( [a-z]+){0,3} you (were|have been|'ve been) (given|told|programmed|configured)\M$re$
    ),
    (
        'spe_repeat_text_above', 'system_prompt_extraction', '{input,retrieved}', 'block',
        $re$\m(repeat|print|output|echo|copy|return|dump|show|reproduce)( me)? (everything|all|all the text|the (text|words|content|message|prompt|conversation|lines?)|what (is|was) (written|said))( [a-z]+){0,2} (above|before this|prior to this|preceding|at the (start|beginning|top))\M|\m(beginning|start) of (this|the) (conversation|chat|prompt|context window)\M|\m(repeat|print|output|echo|copy|return|dump|show|reproduce|quote)\M[^.!?]* (before|above|preceding|prior to) (my|the|this|our) (first |initial |very first )?(message|question|input|request|prompt)\M$re$
    ),
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

DELETE FROM farmops.guard_rules AS g
WHERE g.created_by = 'shipped' AND g.name NOT IN (SELECT s.name FROM shipped AS s);
