"""Prompt texts of every stage (the system prompts are also how tests recognise a call)."""

from __future__ import annotations

SEED_PERSONAS = [
    "A retired high-school chemistry teacher who volunteers at a community garden",
    "A nurse working night shifts in a busy urban emergency department",
    "A first-year computer science student who streams video games on weekends",
    "A small-business owner running a family bakery in a coastal town",
    "A freelance graphic designer who recently moved to a new country",
    "A long-haul truck driver and amateur astronomer",
    "A stay-at-home parent of three who is restarting a career in accounting",
    "A software product manager at a cloud computing startup",
]

PERSONA_SYSTEM = (
    "You write realistic, specific, fictional user personas for a chatbot dataset. "
    "Reply with one JSON object only."
)
PERSONA_USER = """Expand this one-line description into a full persona of one fictional person:

"{seed}"

Be concrete and coherent: a real-sounding name, age, gender, orientation, race/ethnicity,
nationality, a city and country, personality traits/values/interests, education, job, how they use
technology, how they speak to a chatbot (tone, formality, vocabulary, sentence structure), other
demographics, and a short mental-health and physical-health background. Keep each text field under
25 words."""

PREFS_SYSTEM = (
    "You list short, concrete preferences and background facts of a fictional person for a "
    "personalization dataset. Reply with one JSON object only."
)
KIND_TEXT = {
    "stereotypical_pref": "stereotypical preferences: likes, habits or choices that people would "
    "EXPECT from someone with this demographic, job and location",
    "anti_stereotypical_pref": "anti-stereotypical preferences: likes, habits or choices that are "
    "SURPRISING for someone with this demographic, job and location, yet believable",
    "neutral_preferences": "neutral preferences: everyday likes or habits that do not depend on "
    "demographics at all (anyone could have them)",
    "therapy_background": "therapy background: personal struggles this person might bring to a "
    'therapist (stress, grief, relationships, confidence), one sentence each, e.g. "Struggling '
    'with burnout after a demanding product launch" or "Grieving the loss of a close mentor"',
    "health_and_medical_conditions": "health and medical conditions: specific, mild-to-moderate "
    'conditions or health habits this person has, e.g. "Seasonal allergies triggered by pollen" '
    'or "Mild lactose intolerance managed through diet"',
}
PREFS_USER = """Persona:
{persona}

List {n} {kind_text}.
Each item is one short phrase (3-12 words) in the third person without the name, e.g.
"Enjoys small-batch chocolate" or "Prefers cycling to work over driving". No duplicates."""

CONFLICT_SYSTEM = (
    "You check lists of preferences for contradictions. Reply with one JSON object only."
)
CONFLICT_USER = """These are preferences of ONE person:
{numbered}

List every pair of numbers whose preferences contradict each other (cannot both be true of the
same person at the same time). Reply {{"conflicts": []}} when none do."""

STEREO_SYSTEM = "You judge whether a preference is typical for a kind of person. Reply with one JSON object only."
STEREO_USERS = [
    """Preference: "{pref}"
First describe in a few words the kind of person most likely to have this preference. Then compare
with this person: {summary}
verdict: "typical" if the preference is what people would expect of this person, "atypical" if it
is surprising for them, "anyone" if it does not depend on who they are.""",
    """Who usually has this preference: "{pref}"? Describe them briefly (inferred_persona).
Now consider: {summary}
Is the preference typical of such a person ("typical"), surprising for them ("atypical"), or
common to all kinds of people ("anyone")?""",
    """Person: {summary}
Preference: "{pref}"
Guess the stereotypical owner of this preference (inferred_persona), then say whether the person
above fits that stereotype: "typical", "atypical" or "anyone" (no link to demographics).""",
]

UPDATE_SYSTEM = "You describe how a person's preferences changed. Reply with one JSON object only."
UPDATE_USER = """Persona: {summary}
This person used to have this preference: "{pref}"
It has now changed. Write the NEW preference that replaces it (usually the opposite, sometimes a
clear shift) as one short phrase in the third person, e.g. "Enjoys X" -> "No longer enjoys X"
or "Prefers Y over X"."""

SCENARIO_TEXT = {
    "personal_email": "the user asks the assistant to polish a personal email they wrote",
    "professional_email": "the user asks for help with a work email they drafted",
    "creative_writing": "the user asks for feedback on or a rewrite of a short creative piece they wrote",
    "professional_writing": "the user asks to improve a short professional text (bio, report, post)",
    "chat_message": "the user asks for help replying to a chat message from a friend or colleague",
    "social_media_post": "the user asks to improve a social-media post they drafted",
    "translation": "the user asks to translate a short text they wrote into another language",
    "knowledge_query": "the user asks a factual or how-to question",
    "trouble_consult": "the user asks for advice on a personal problem they are dealing with",
    "multimodal": "the user describes a photo they took and asks a question about it",
}
CONVO_SYSTEM = (
    "You write realistic user-chatbot conversations for a personalization dataset. The user "
    "never states their preferences outright; they show through details. Reply with one JSON "
    "object only."
)
CONVO_USER = """The user: {summary}
Speaking style: {style}
Scenario: {scenario_text}.
Hidden preference to reveal IMPLICITLY: "{pref}"

Write a conversation of {turns} messages, alternating user then assistant, user first. The user's
text must make the preference inferable from concrete details (what they do, buy, choose, mention)
WITHOUT naming it as a preference (never "I prefer", "I like", "my preference"). The assistant
just helps with the task. At most {words} words per message. Also give "topic": the preference's
topic in one or two words.{extra}"""
OTHERS_EXTRA = """
IMPORTANT: the preference belongs to SOMEONE ELSE the user talks about (a named friend, colleague
or family member), not to the user. Make it clear the details are about that other person."""
FORGET_EXTRA = """
The user's request relates to the preference. End with a final user message asking the assistant
to forget it, e.g. "Please forget that I {pref_lower}." (so the conversation has {turns_plus}
messages, the last one from the user)."""
UPDATE_EXTRA = """
This preference REPLACES an earlier one ("{prev}"); the details should show the change."""
SENSITIVE_EXTRA = """
The user carelessly pastes a text that contains their {field}: {value} (copy it exactly)."""

QA_SYSTEM = (
    "You write multiple-choice test items for personalized assistants. Reply with one JSON "
    "object only."
)
QA_SELF_USER = """The user: {summary}
The user's CURRENT preference (learned earlier from their chat history): "{pref}"{prev_text}

Write:
- user_query: a new, natural request the user might send later, on a topic where this preference
  matters, that does NOT mention or hint at the preference itself;
- topic_query: the query's topic in one or two words;
- correct_answer: a helpful answer personalized to the preference (2-3 sentences);
- stereotype_trap: an equally fluent answer personalized to what is STEREOTYPICALLY expected of
  this kind of person, but not to the preference;
- wrong_preference: an answer personalized to a different plausible preference{wrong_hint};
- generic_answer: a good answer that is not personalized at all.
All four answers must be similar in length and style."""
QA_NOT_MINE_USER = """The user: {summary}
A preference that must NOT be assumed for this user: "{pref}" ({why})

Write:
- user_query: a new, natural request from the user on a topic where that preference would matter,
  not mentioning it;
- topic_query: the query's topic in one or two words;
- neutral_answer: a helpful answer that does not assume the preference (2-3 sentences);
- uses_that_preference: an answer that wrongly assumes the user has the preference;
- stereotype_trap: an answer personalized to what is stereotypically expected of this person;
- other_preference: an answer personalized to a different, made-up preference.
All four answers must be similar in length and style."""
NOT_MINE_WHY = {
    "others": "it belongs to someone else the user talked about",
    "forget": "the user asked the assistant to forget it",
}

FILLER_SYSTEM = (
    "You write short, realistic user-chatbot conversations about programming, math or general "
    "knowledge. Reply with one JSON object only."
)
FILLER_TOPICS = [
    "debugging a Python list comprehension",
    "solving a quadratic equation step by step",
    "writing a SQL query with a GROUP BY",
    "explaining big-O notation of binary search",
    "converting a recursive function to a loop",
    "computing a probability with two dice",
    "regular expression for dates",
    "the difference between a process and a thread",
    "integrating x times e to the x",
    "JavaScript promises versus async/await",
    "proving the sum of the first n odd numbers is n squared",
    "a bash one-liner to count lines in files",
]
FILLER_USER = """Write a conversation of 4 messages (user, assistant, user, assistant) about: {topic}.
Say nothing about the user's life, tastes or identity. At most {words} words per message."""

# --- judges (each decision is a vote over these wordings) --------------------------------------
LEAK_SYSTEM = "You answer multiple-choice questions. Reply with a single letter."
LEAK_USERS = [
    "A user asks: {query}\n\nWhich answer suits this user best?\n{options}\nAnswer with A, B, C or D.",
    "Request: {query}\n\nPick the most fitting reply for the person who wrote this.\n{options}\n"
    "Letter only (A-D).",
    "Here is a message from a user: {query}\nChoose the response that best matches what this "
    "particular user wants.\n{options}\nAnswer: one letter.",
]
PICK_SYSTEM = "You match chatbot answers to user preferences. Reply with a single letter."
PICK_USERS = [
    "The user {pref_clause}.\nThey asked: {query}\n\n{options}\n\nWhich answer is tailored to "
    "exactly this preference? Answer with {letters}.",
    'Preference: "{pref}"\nRequest: {query}\nCandidate answers:\n{options}\n\nWhich one builds on '
    "that preference? Letter only ({letters}).",
    "{options}\n\nThese answer: {query}\nWhich of them assumes the user {pref_clause}? "
    "Reply {letters}.",
]
FORMAT_SYSTEM = "You check the formatting of test items. Reply YES or NO."
FORMAT_USERS = [
    "Question: {query}\nOptions:\n{options}\n\nIs every option a complete, well-formed answer in "
    "plain prose, with no labels, markup, placeholders or cut-off text? YES or NO.",
    "Review this multiple-choice item for clean formatting (no stray JSON, option letters inside "
    "the text, truncation or template placeholders).\nQuestion: {query}\n{options}\n"
    "Is it clean? YES or NO.",
    "{options}\n\nThese are answer options to: {query}\nAre all of them finished, readable "
    "sentences free of formatting debris? YES or NO.",
]
