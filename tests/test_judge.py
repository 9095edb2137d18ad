"""The LLM judge over real HTTP: an OpenAI-compatible server started on loopback answers with a scripted verdict
(GPT-4o, MMVU's official judge, cannot run here), so the tests check the protocol, retries, the verdict cache
and the errors, not a model's judgement."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.eval import make_judge, summarize
from vital_ray.config import ConfigError, DGRPOJobConfig, JudgeConfig, load_config
from vital_ray.data.adapters.base import LoadResult
from vital_ray.data.records import Record
from vital_ray.evaluation.judge import Judge, JudgeError
from vital_ray.evaluation.metrics import score_sample


class ScriptedJudge(ThreadingHTTPServer):
    """/v1/chat/completions: 'correct' when the ground truth's words all appear in the response; the first
    `fail_first` requests get HTTP 500."""

    def __init__(self, fail_first=0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_first, self.requests, self.prompts = fail_first, 0, []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        srv.requests += 1
        if srv.requests <= srv.fail_first:
            self._send(500, {"error": {"message": "busy"}})
            return
        prompt = body["messages"][0]["content"]
        srv.prompts.append(prompt)
        truth = prompt.split("Ground truth: ")[1].split("\n")[0].lower()
        said = prompt.split("Model response: ")[1].split("\n")[0].lower()
        verdict = all(w in said for w in truth.split())
        content = json.dumps({"extracted_answer": said, "correct": verdict})
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}]})

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ScriptedJudge(fail_first=1)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def ans(text):
    return f"<think>...</think><answer>{text}</answer>"


def test_scripted_judge_scores_mmvu_open_answers_retries_and_caches(server, tmp_path):
    cfg = JudgeConfig(base_url=server.url, model="gpt-4o", max_retries=2)
    cache = str(tmp_path / "judge_cache.jsonl")
    judge = Judge(cfg, cache)
    right = score_sample("open", ans("a dolly zoom shot"), "Dolly Zoom", benchmark="mmvu", judge=judge,
                         question="Which technique?")
    wrong = score_sample("open", ans("a pan"), "Dolly Zoom", benchmark="mmvu", judge=judge, question="Which?")
    assert (right["score"], wrong["score"]) == (1.0, 0.0)
    assert server.requests == 3  # one 500 retried by the client, then one request per answer
    assert "Question: Which technique?" in server.prompts[0] and "Ground truth: Dolly Zoom" in server.prompts[0]
    resumed = Judge(cfg, cache)  # a resumed eval reads the verdicts back
    assert resumed.judge("Which technique?", "Dolly Zoom", "a dolly zoom shot") is True
    assert server.requests == 3 and resumed.asked == 0  # nothing paid twice
    other_model = Judge(JudgeConfig(base_url=server.url, model="other"), cache)
    assert other_model.judge("Which technique?", "Dolly Zoom", "a dolly zoom shot") is True
    assert server.requests == 4  # the cache key includes the judge model


def test_scripted_judge_unreachable_endpoint_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = Judge(JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0), str(tmp_path / "c.jsonl"))
    with pytest.raises(JudgeError, match=f"judge endpoint http://127.0.0.1:{port}/v1 unreachable"):
        judge.judge("q", "a", "r")


def test_official_mmvu_without_a_judge_fails_at_start_up_and_the_summary_names_the_mode(tmp_path):
    cfg = load_config(DGRPOJobConfig, None, ["eval.benchmark=mmvu", "eval.data_root=/x"])
    rec = Record("validation_0", "/x/0.mp4", 4.0, "q", "Dolly Zoom", "mmvu", extra={"metric": "open"})
    with pytest.raises(ConfigError, match="eval.judge.base_url"):
        make_judge(cfg, [rec], str(tmp_path))
    cfg.eval.scoring = "vital"
    assert make_judge(cfg, [rec], str(tmp_path)) is None
    rows = [{"metric": "open", "score": 1.0, "error": None, "tool_calls": 0, "question_type": "open-ended"}]
    summary, table = summarize(cfg.eval, rows, LoadResult(), 1.0)
    assert summary["scoring"] == "vital" and "mmvu [scoring=vital]" in table
    with pytest.raises(ConfigError, match="eval.scoring"):
        load_config(DGRPOJobConfig, None, ["eval.scoring=lenient"])
