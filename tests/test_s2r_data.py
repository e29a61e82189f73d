"""S²R's data construction (papers.md §3.3, §3.8): candidate answers, trajectories built from judged samples with
their SFT flags, the judge behind an OpenAI-compatible endpoint on the loopback address (and its one-line errors),
judging resumed without asking twice, and the import of released files."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verireason.config import SamplingCfg
from verireason.errors import UserError
from verireason.examples import encode
from verireason.judge import HTTPJudge
from verireason.papers import s2r_data
from verireason.papers.s2r import RECHECK, RETRY, SYSTEM
from verireason.records import Problem, Sample


def _sample(i: int, extracted: str | None, correct: bool, pid: str = "p") -> Sample:
    return Sample(bench="b", problem_id=pid, sample_index=i, prompt="", completion=f"attempt {i}: \\boxed{{{extracted}}}",
                  extracted=extracted, correct=correct, formatted=True, tokens=5, finish_reason="stop", gold="4",
                  problem="What is 2 + 2?")


def test_candidate_answers_are_unique_with_a_correct_one_first():
    samples = [_sample(0, "5", False), _sample(1, "4", True), _sample(2, "5", False), _sample(3, None, False),
               _sample(4, "6", False), _sample(5, "4.0", True)]
    assert s2r_data.candidate_answers(samples) == [("4", True), ("4.0", True), ("5", False), ("6", False)]
    assert s2r_data.candidate_answers(samples, limit=2) == [("4", True), ("4.0", True)]


def _judged(answer: str, truth: bool, kept: bool) -> s2r_data.Judgement:
    verdict = truth if kept else not truth
    return s2r_data.Judgement("b", "p", answer, truth, f"Checked {answer}. The answer is {'correct' if verdict else 'incorrect'}.",
                              verdict, kept)


def test_one_wrong_answer_gives_the_byte_exact_two_attempt_trajectory(tiny_model_dir):
    problem = Problem("p", "What is 2 + 2?", "4", "b")
    samples = [_sample(0, "5", False), _sample(1, "4", True), _sample(2, "4", True), _sample(3, "4", True),
               _sample(4, "4", True)]
    judgements = [_judged("4", True, True), _judged("5", False, True)]
    built = s2r_data.build_problem(problem, "b", samples, judgements, draw=0.4)  # 1 wrong: kept at p = 0.5
    assert built.reason == "kept" and built.wrong == 1
    messages = built.record["messages"]
    assert messages[0] == {"role": "system", "content": SYSTEM} and messages[1]["content"] == problem.problem
    text = "".join(s["text"] for s in messages[2]["content"])
    assert text == ("attempt 0: \\boxed{5}" + RECHECK + "Checked 5. The answer is incorrect." + RETRY
                    + "attempt 1: \\boxed{4}" + RECHECK + "Checked 4. The answer is correct.")
    from verireason.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    example = encode(built.record, tok)
    wrong_part = len(tok("attempt 0: \\boxed{5}", add_special_tokens=False)["input_ids"])
    assert not any(example.trained[:wrong_part]) and all(example.trained[wrong_part:])
    assert s2r_data.build_problem(problem, "b", samples, judgements, draw=0.6).reason == "not_drawn"


def test_problems_without_a_verified_correct_or_wrong_answer_are_dropped():
    problem = Problem("p", "What is 2 + 2?", "4", "b")
    samples = [_sample(0, "5", False), _sample(1, "4", True)]
    assert s2r_data.build_problem(problem, "b", samples, [_judged("4", True, False), _judged("5", False, True)],
                                  0.0).reason == "no_verified_correct"
    assert s2r_data.build_problem(problem, "b", samples, [_judged("4", True, True), _judged("5", False, False)],
                                  0.0).reason == "no_verified_wrong"


def test_build_writes_sft_and_rl_files_and_the_same_files_again(tmp_path):
    problems = [("b", Problem(p, "What is 2 + 2?", "4", "b")) for p in ("p", "q")]
    samples = [_sample(i, "4", True, pid) for pid in ("p", "q") for i in range(5)]
    judgements = [s2r_data.Judgement("b", pid, "4", True, "It is correct.", True, True) for pid in ("p", "q")]
    first = s2r_data.build(problems, samples, judgements, tmp_path, seed=3)
    text = (tmp_path / "sft.jsonl").read_text()
    assert s2r_data.build(problems, samples, judgements, tmp_path, seed=3) == first
    assert (tmp_path / "sft.jsonl").read_text() == text  # seeded keep draws: a rerun builds the same file
    rl = [json.loads(line) for line in (tmp_path / "rl.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rl] == ["p", "q"] and sum(r["is_sft"] for r in rl) == first["trajectories"]


# --- the judge endpoint -------------------------------------------------------------------------------------------


class _Stub:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 that answers with ``reply(body)``."""

    def __init__(self, reply, status: int = 200):
        stub = self
        self.requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                data = json.dumps(reply(body)).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802  (the model list the run asks for before it starts)
                data = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()
                self.send_response(200 if self.path.endswith("/models") else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _verdict_reply(body: dict) -> dict:
    prompt = body["messages"][-1]["content"]
    answer = prompt.split("* Answer:\n")[1].split("\n")[0]
    verdict = "correct" if answer == "4" else "incorrect"
    return {"choices": [{"message": {"role": "assistant", "content": f"Plug in {answer}. The answer is {verdict}."}}]}


def test_http_judge_against_a_loopback_stub(monkeypatch):
    stub = _Stub(_verdict_reply)
    monkeypatch.setenv("VR_TEST_KEY", "secret")
    try:
        judge = HTTPJudge(stub.url, "gpt-4-1106-preview", SamplingCfg(temperature=0.1, max_tokens=64),
                          api_key_env="VR_TEST_KEY", concurrency=2)
        assert judge.answer(["* Question:\nq\n\n* Answer:\n4\n\n* Your Prove:\n",
                             "* Question:\nq\n\n* Answer:\n5\n\n* Your Prove:\n"], seed=0) == [
            "Plug in 4. The answer is correct.", "Plug in 5. The answer is incorrect."]
        request = stub.requests[0]
        assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
        assert request["model"] == "gpt-4-1106-preview" and request["temperature"] == 0.1 and request["max_tokens"] == 64
    finally:
        stub.close()


def test_judging_writes_as_it_goes_and_skips_what_is_on_disk(tmp_path):
    stub = _Stub(_verdict_reply)
    try:
        judge = HTTPJudge(stub.url, "m", SamplingCfg(temperature=0.1))
        samples = [_sample(0, "4", True), _sample(1, "5", False), _sample(2, "5", False)]
        log = s2r_data.judgement_log(tmp_path / "judgements.jsonl")
        first = s2r_data.judge(judge, samples, log, max_answers=5, seed=0, progress=False)
        assert [(j.answer, j.truth, j.verdict, j.kept) for j in first] == [("4", True, True, True), ("5", False, False, True)]
        assert sorted("Answer:\n4\n" in r["messages"][0]["content"] for r in stub.requests) == [False, True]
        again = s2r_data.judge(judge, samples, log, max_answers=5, seed=0, progress=False)
        assert again == first and len(stub.requests) == 2  # nothing asked twice
    finally:
        stub.close()


@pytest.mark.parametrize("status,reply,message", [
    (200, {"unexpected": True}, "did not answer like an OpenAI chat completion"),
    (401, {"error": "bad key"}, "answered HTTP 401"),
])
def test_http_judge_errors_are_one_line(status, reply, message):
    stub = _Stub(lambda body: reply, status)
    try:
        with pytest.raises(UserError, match=message):
            HTTPJudge(stub.url, "m", SamplingCfg(), retries=0).answer(["x"], seed=0)
    finally:
        stub.close()


def test_an_unreachable_judge_is_one_line():
    with pytest.raises(UserError, match="cannot be reached"):
        HTTPJudge("http://127.0.0.1:9/v1", "m", SamplingCfg(), retries=0, timeout_s=2).answer(["x"], seed=0)


# --- import of released files -------------------------------------------------------------------------------------


def test_import_of_released_files(tmp_path, tiny_model_dir):
    response = "s1 \\boxed{5}" + RECHECK + "No." + RETRY + "s2 \\boxed{4}" + RECHECK + "Yes."
    (tmp_path / "sft.json").write_text(json.dumps([{"query": "What is 2 + 2?", "response": response}]))
    (tmp_path / "rl.jsonl").write_text(json.dumps({"problem": "What is 3 + 3?", "answer": 6, "level": "Level 1"}) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    summary = s2r_data.import_dataset(tmp_path, out, "sft.json", "rl.jsonl")
    assert summary == {"trajectories": 1, "problems": 1}
    [record] = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    segments = record["messages"][-1]["content"]
    assert "".join(s["text"] for s in segments) == response
    assert [s["train"] for s in segments] == [False, True, True, True, True]
    [problem] = [json.loads(line) for line in (out / "rl.jsonl").read_text().splitlines()]
    assert problem["answer"] == "6" and problem["id"] == "s2r-0"
    (tmp_path / "bad.json").write_text(json.dumps([{"text": "?"}]))
    with pytest.raises(UserError, match="expected 'messages', or a prompt"):
        s2r_data.import_dataset(tmp_path, out, "bad.json", "missing.jsonl")
    with pytest.raises(UserError, match="neither"):
        s2r_data.import_dataset(tmp_path, out, "none.json", "none.jsonl")
