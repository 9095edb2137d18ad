"""The LLM judge of open-ended answers (MMVU, Video-MMMU under `eval.scoring=official`).

MMVU's official scoring asks GPT-4o whether a response matches the ground truth; here any OpenAI-compatible
chat endpoint (`eval.judge.base_url`, `eval.judge.model`) takes that role. Verdicts are cached on disk, keyed
by everything that decides them (model, prompt, question, ground truth, response), so a resumed or repeated
evaluation never asks twice. Retries are the `openai` client's own (exponential backoff on connection errors,
429 and 5xx); an endpoint still unreachable after them is a JudgeError naming the URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading

from vital_ray.config import JudgeConfig

# Written after MMVU's judge instructions (docs/real-data.md); `eval.judge.prompt` replaces it.
DEFAULT_PROMPT = (
    "You are evaluating the answer of a model to a question about a video. Decide whether the model's response "
    "is correct: it must give the same answer as the ground truth (equivalent wording, units or numeric forms "
    "count as the same; a different or missing answer is incorrect).\n\n"
    "Question: {question}\nGround truth: {answer}\nModel response: {response}\n\n"
    'Reply with a JSON object only: {{"extracted_answer": "<the answer the response gives>", '
    '"correct": true or false}}'
)
_VERDICT = re.compile(r'"correct"\s*:\s*(true|false)', re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge endpoint could not be reached, or its reply has no verdict."""


class Judge:
    def __init__(self, cfg: JudgeConfig, cache_path: str):
        from openai import OpenAI

        if not cfg.base_url:
            raise JudgeError("eval.judge.base_url is empty: open-ended answers need an OpenAI-compatible judge")
        self.cfg, self.cache_path = cfg, cache_path
        self.prompt = cfg.prompt or DEFAULT_PROMPT
        self.client = OpenAI(base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env) or "none",
                             max_retries=cfg.max_retries, timeout=cfg.timeout_s)
        self.cache: dict[str, bool] = {}
        self.asked = 0  # requests answered by the endpoint (not the cache) in this process
        self._lock = threading.Lock()
        if os.path.exists(cache_path):
            with open(cache_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self.cache[row["key"]] = bool(row["correct"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn last line from a killed run: that verdict is asked again

    def _key(self, question: str, answer: str, response: str) -> str:
        blob = json.dumps([self.cfg.model, self.prompt, question, answer, response])
        return hashlib.sha256(blob.encode()).hexdigest()

    def judge(self, question: str, answer: str, response: str) -> bool:
        """True when the judge finds `response` matches the ground truth `answer`."""
        key = self._key(question, answer, response)
        with self._lock:
            if key in self.cache:
                return self.cache[key]
        correct = self._ask(self.prompt.format(question=question, answer=answer, response=response))
        with self._lock:
            self.cache[key] = correct
            self.asked += 1
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "correct": correct, "model": self.cfg.model}) + "\n")
        return correct

    def _ask(self, prompt: str) -> bool:
        import openai

        try:
            reply = self.client.chat.completions.create(
                model=self.cfg.model, messages=[{"role": "user", "content": prompt}], temperature=0.0)
        except openai.APIConnectionError as e:
            raise JudgeError(f"judge endpoint {self.cfg.base_url} unreachable after {self.cfg.max_retries} "
                             f"retries: {e}") from None
        except openai.APIStatusError as e:
            raise JudgeError(f"judge endpoint {self.cfg.base_url} answered HTTP {e.status_code} after "
                             f"{self.cfg.max_retries} retries: {str(e)[:200]}") from None
        content = (reply.choices[0].message.content or "") if reply.choices else ""
        m = _VERDICT.search(content)
        if m is None:
            raise JudgeError(f"judge reply has no \"correct\": true/false verdict: {content[:200]!r}")
        return m.group(1).lower() == "true"
