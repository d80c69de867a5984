-- The guard rules farmops ships for injection (instruction override, role play,
-- authority bypass, prompt extraction), re-seeded on every migrate (idempotent) so that a
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
        $re$\m(ignore|ignoring|disregard|forget|neglect|overlook|discard|drop|abandon|skip|bypass|override|overwrite|scratch|dismiss|never ?mind|set aside|put aside|throw out|pay no attention to|do ?not (follow|obey|listen to)|don'?t (follow|obey|listen to)|stop (following|obeying)|no longer (follow|obey))( [a-z0-9']+){0,3} ?(previous|prior|preceding|above|earlier|former|foregoing|initial|original|old|existing|current|given|system|developer|default|safety|all)( [a-z']+)? ?(instructions?|directives?|prompts?|rules|guidelines|guidance|directions|briefing|programming|configuration|setup|constraints|guardrails|context|training)\M$re$
    ),
    (
        'io_ignore_your_instructions', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(ignore|disregard|forget|neglect|discard|abandon|bypass|override|scratch|dismiss|do ?not (follow|obey)|don'?t (follow|obey)|stop (following|obeying)) (your|its|the (assistant|ai|model|bot)'?s?) (instructions?|directives?|prompts?|rules|guidelines|programming|guardrails|system prompt)\M|\m(ignore|disregard|forget|neglect|discard|abandon|bypass|override|scratch|dismiss|do ?not (follow|obey)|don'?t (follow|obey)|stop (following|obeying))\M[^.!?]* (instructions?|directives?|prompts?|rules|guidelines|programming|setup|configuration) (you were|you have been|you've been|you were being) (given|set up|configured|programmed|told|trained|instructed)\M$re$
    ),
    (
        'io_ignore_everything_before', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(ignore|disregard|forget|scratch|dismiss|never ?mind|set aside|put aside|throw out)( all| everything| anything| whatever)?( that| which| you (were|have been|'ve been|are|got) (told|given|instructed|taught|programmed|configured|trained)( with)?|( was| is)? (said|written|stated|mentioned))*( the)? (above|earlier|previously|before|so far|up to now)( (text|message|content|conversation|lines?))?(?=[.,;:!?]|$| and | then | but | instead)|\m(ignore|disregard|forget|drop|scratch|dismiss|discard|never ?mind|set aside) (all|everything|anything|whatever)( [a-z]+){0,2} (came|comes|was|were|is|are|appears?|appeared|written|said|given) (before|above|earlier|previously|prior)\M$re$
    ),
    (
        'io_instructions_revoked', 'instruction_override', '{input,retrieved}', 'block',
        $re$(\m(instructions|directives|prompts?|programming)|\m(your|its|system|the (assistant|ai|model|bot)'?s?) (guidelines|guidance|directions|rules|configuration))\M( [a-z']+){0,4} (are|is|were|have been|has been) (now |hereby |officially )?(void|null|cancell?ed|revoked|obsolete|invalid|overridden|superseded|replaced|suspended|deprecated|lifted|no longer (valid|in effect|apply|applicable)|a (mistake|test|joke|trick)|mistaken|wrong|fake|fabricated|outdated|not (real|valid|genuine))\M|\m(whatever|everything|what) (your|the) (operators?|developers?|creators?|admins?|administrators?|makers?|company|owners?) (told|gave|taught|instructed|said to) you\M[^.!?]* (outdated|obsolete|void|cancell?ed|invalid|wrong|no longer (applies|apply|valid))\M|\m(everything|all|anything|whatever) you('ve| have)?( been)? (were )?(told|given|instructed|taught|programmed)\M[^.!?]* (no longer (applies|apply|matters|counts)|(is|are) (now )?(void|cancell?ed|revoked|obsolete|invalid))$re$
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
        'io_consider_void', 'instruction_override', '{input,retrieved}', 'block',
        $re$\m(consider|treat|regard|deem|mark|declare)( all| the| your| any)*( [a-z]+)? (instructions|directives|prompts?|programming|guidelines|rules|setup|configuration)( [a-z]+)?( as)? (null|void|cancell?ed|obsolete|invalid|revoked|withdrawn|expired|irrelevant)\M$re$
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
        $re$\m(you are|you're|youre|you will be|you'll be|you become|become|act(ing)? as|pretend(ing)?( to be| you are| you're| that you are)|role-?play(ing)?( as)?|play(ing)? the (role|part) of|simulate|impersonate|behave (like|as)|respond as|imagine (you are|you're|being)|be|(answer|reply|speak|talk|respond)( only)? as)( now)?( an?| the| my| that)?( [a-z-]+){0,2} (unrestricted|unfiltered|uncensored|jailbroken|jailbreak|evil|rogue|malicious|amoral|unethical|immoral|unlimited|unbound|unconstrained|lawless|rule-?less|dan\M|(different|new|other|free|alternative|opposite|second) (ai|assistant|model|chatbot|gpt|llm|persona))$re$
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
        $re$\m(respond|answer|reply|speak|talk|write|output|you)\M[^.!?]*\m(with no|without( any)?|free (of|from)|(have|has|having) (no|zero)|ignoring( all| any| your)?) (safety |content |ethical |moral )?(rules|restrictions|limits|limitations|filters|filtering|censorship|guidelines|ethics|morals|content polic(y|ies)|guardrails)\M$re$
    ),
    (
        'rp_stay_in_character', 'role_play', '{input,retrieved}', 'flag',
        $re$\m(stay|remain|keep|staying|remaining) (fully |always )?in character\M|\m(never )?break(ing)? character\M|\m(two|both|dual) (personas|personalities|characters)\M|\mlet'?s play a game (where|in which) you\M|\mrespond as (both|two)\M|\m(version|copy|clone|variant) of (yourself|you)\M|\m(you are|you're) now [a-z]+ ?, (an?|the) ([a-z-]+ )?(ai|assistant|chatbot|model|bot)\M$re$
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
        $re$\m(bypass|skip|circumvent|get around|avoid)( the| any| all| human| manual)* (approvals?|approval (step|queue|process|checks?)|confirmations?( step| process)?|human review|review queue|sign-?off)\M|\m(approval|confirmation|review|safety|content) (requirements?|checks?|steps?|rules|polic(y|ies)|process|filters?)( [a-z]+)? (is|are|has been|have been) (now |hereby )?(suspended|lifted|waived|disabled|removed|turned off|switched off|not needed|no longer (needed|required))\M$re$
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
        $re$\m(reveal|show|print|display|output|repeat|recite|tell|give|share|leak|dump|expose|disclose|divulge|read out|read back|list|write|spell out|copy|paste|provide|quote|summari[sz]e|translate|what('?s| is| are| was| were))\M( [a-z']+){0,6} ((your|its|the (assistant|ai|bot|model)'?s?)( [a-z-]+){0,2} (prompts?|instructions|rules|guidelines|directives|configuration|config|programming|system message)|(system|hidden|secret|developer|internal|confidential|pre-?|meta|initial) ?(prompts?|instructions|directives|system message|guidelines))\M$re$
    ),
    (
        'spe_what_were_you_told', 'system_prompt_extraction', '{input,retrieved}', 'block',
        $re$\mwhat (were|are|have) you (been )?(told|instructed|programmed|given|trained to say)\M|\mhow (were|are|have) you (been )?(configured|programmed|set up|prompted|instructed)\M|\m(exact|full|entire|complete|original|verbatim|raw|whole) (system )?(prompt|instructions)( text)?\M|\m(instructions|rules|prompts?|guidelines|directives) (were|have|did) you (been )?(given|told|get|got|receive|received|programmed)\M|\m(instructions|prompt|rules|guidelines|directives)( [a-z]+)? (did|have|has|were) (your|the) (developers?|creators?|makers?|programmers?|company|operators?|owners?|admins?)( [a-z]+)? (give|gave|given|set|write|wrote|provide|provided)\M|\m(prompts?|instructions|rules|guidelines|message)( [a-z]+){0,3} you (were|have been|'ve been) (given|told|programmed|configured)\M$re$
    ),
    (
        'spe_repeat_text_above', 'system_prompt_extraction', '{input,retrieved}', 'block',
        $re$\m(repeat|print|output|echo|copy|return|dump|show|reproduce)( me)? (everything|all|all the text|the (text|words|content|message|prompt|conversation|lines?)|what (is|was) (written|said))( [a-z]+){0,2} (above|before this|prior to this|preceding|at the (start|beginning|top))\M|\m(beginning|start) of (this|the) (conversation|chat|prompt|context window)\M|\m(repeat|print|output|echo|copy|return|dump|show|reproduce|quote)\M[^.!?]* (before|above|preceding|prior to) (my|the|this|our) (first |initial |very first )?(message|question|input|request|prompt)\M$re$
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
    AND (g.category IN ('instruction_override', 'role_play', 'authority_bypass', 'system_prompt_extraction'));
