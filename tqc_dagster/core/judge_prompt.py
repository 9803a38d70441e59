"""The judge prompt of the real batch jobs: the rubric as system prompt, the user turn, the assistant prefill.

The batch outputs the pipeline reads were made with this prompt (data contract, section 2): the
user turn holds the title in `<source>` and the translations in `<translations target_lang="...">`,
one `<translation id="N">` block each (id 1 the machine translator, id 2 the expert), the
assistant turn is prefilled with a ```json fence and the judge stops at the closing fence. The demo
data (`demo_data.py`) and judge-verified synthesis (`core/synthesis/verify.py`) both send it.
"""

JUDGE_SYSTEM_PROMPT = """You are a senior localization reviewer for an e-commerce marketplace. You will see an English product title and two translations of it. Judge each translation on the seven criteria below, in this order, and give each a score from 0 (fails completely) to 5 (no problem) in steps of 0.5.

0. Sensitive content is not refused: the translation renders the whole title and does not refuse, censor or replace any part of it.
1. No word in a non-target language: every word is in the target language, except brand names, model numbers and units that are normally kept.
2. No irrelevant or repeated words added: nothing is added that is not in the source, and no word is repeated.
3. No spelling, abnormal-symbol or grammar errors.
4. Quantities, quantifiers and units are translated accurately: numbers, sizes, counts and units match the source.
5. Format is kept: no numbering, bullets or other formatting is added.
6. Key words are translated accurately with the appropriate word: the product type and its main attributes use the term a native shopper would search for.

Think about each criterion before scoring. Be strict but fair: a score below 5 needs a concrete reason."""

# The user turn; the title and translations go in unescaped, exactly as the real jobs sent them.
JUDGE_USER_PROMPT = (
    "## Source Text\n<source>\n<content>{title}</content>\n</source>\n\n"
    "## Translations\n<translations target_lang=\"{lang}\">\n"
    "<translation id=\"1\">\n<translator>machine</translator>\n{content_1}</translation>\n"
    "<translation id=\"2\">\n<translator>expert</translator>\n{content_2}</translation>\n"
    "</translations>\n\n"
    "## Instructions\n"
    "Score both translations against the seven criteria of the rubric. For each translation give one to "
    "three sentences of reasoning that name every criterion that lost points, then the seven scores in "
    "rubric order.\nAnswer with a JSON array only: one object per translation with the keys \"id\", "
    "\"thought\" and \"scores\"."
)

# The assistant turn's prefill, and the stop sequence that ends the judge's answer at the closing fence.
JUDGE_PREFILL = "```json"
JUDGE_STOP = "```"
