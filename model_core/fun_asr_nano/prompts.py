"""Task prompts, built exactly as upstream FunASRNano.get_prompt / generate_chatml / data_load_speech do.

The user turn is `<prompt>` followed by the audio rows (no marker tokens); upstream tokenizes the text before and
after the audio separately, so we keep the two parts apart too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..common.text import clean_text

SYSTEM_PROMPT = "You are a helpful assistant."
HOTWORD_PREAMBLE = (
    "请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。\n\n\n**上下文信息：**\n\n\n"
)
# the LoRA-adapted unified model is trained on this task prompt (upstream publishes no translation task)
TRANSLATE_TO_ENGLISH_PROMPT = "转写语音并翻译为英文："


class TaskMode(Enum):
    TRANSCRIBE = "transcribe"  # 语音转写成中文：
    TRANSCRIBE_EN = "transcribe_en"  # 语音转写成英文： (English speech -> English text)
    TRANSLATE_TO_EN = "translate"  # 转写语音并翻译为英文： (needs the LoRA-adapted model)
    AUTO = "auto"  # 语音转写： (any supported language, as spoken)


# upstream passes `language` through verbatim into 语音转写成{language}
LANGUAGE_NAMES = {"zh": "中文", "en": "英文", "ja": "日文"}
_TASK_LANGUAGE = {TaskMode.TRANSCRIBE: "中文", TaskMode.TRANSCRIBE_EN: "英文", TaskMode.AUTO: None}


def user_prompt(task: TaskMode = TaskMode.TRANSCRIBE, hotwords: list[str] | None = None, itn: bool = True) -> str:
    """The text in front of the audio rows (upstream get_prompt)."""
    if task is TaskMode.TRANSLATE_TO_EN:
        return TRANSLATE_TO_ENGLISH_PROMPT
    prompt = ""
    # hotwords come from users and configs; the tokenizer parses special tokens in the prompt text, so a literal
    # <|im_end|> in one would end the user turn (common.text)
    hotwords = [w for w in (clean_text(h).replace("\n", " ") for h in hotwords or []) if w]
    if hotwords:
        prompt = HOTWORD_PREAMBLE + f"热词列表：[{', '.join(hotwords)}]\n"
    language = _TASK_LANGUAGE[task]
    prompt += "语音转写" if language is None else f"语音转写成{language}"
    if not itn:
        prompt += "，不进行文本规整"
    return prompt + "："


@dataclass(frozen=True)
class ChatPrompt:
    """ChatML text around the audio rows: prefix + <audio rows> + suffix."""

    prefix: str
    suffix: str


def chat_prompt(prompt: str, system: str = SYSTEM_PROMPT) -> ChatPrompt:
    return ChatPrompt(
        prefix=f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}",
        suffix="<|im_end|>\n<|im_start|>assistant\n",
    )


def clean_response(text: str) -> str:
    """Upstream post-processing: `/sil` marks pauses; collapse whitespace."""
    import re

    return re.sub(r"\s+", " ", text.replace("/sil", " "))
