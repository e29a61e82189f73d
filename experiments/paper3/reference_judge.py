"""A reference-informed judge behind an OpenAI-compatible endpoint on the loopback address, for the small run.

S²R built its verifications with a strong model over an OpenAI-compatible API (papers.md §3.3; likely GPT-4). No
such model runs on a 2-core laptop, and the 135M model cannot judge, so this server stands in for it: it reads the
question and the answer out of the verbatim confirmative prompt, looks the question up among the arith problems,
and writes a short check that recomputes the story's steps and ends "Therefore, the answer is correct." or
"... incorrect." accordingly. It is a judge that knows the reference solution, not a model: say so wherever its
trajectories are used. The data stage still runs its own verdict filter on every reply.

Usage: python experiments/paper3/reference_judge.py PORT [SEED SIZE LEVELS]  (serves until killed)"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from verireason import arith

PROMPT = re.compile(r"\* Question:\n(?P<question>.*)\n\n\* Answer:\n(?P<answer>.*)\n\n\* Your Prove:", re.DOTALL)


def verification(solution: str, gold: str, answer: str) -> str:
    steps = [line for line in solution.splitlines() if "\\boxed" not in line]
    verdict = "correct" if answer.strip() == gold else "incorrect"
    relation = "matches" if verdict == "correct" else "does not match"
    return (f"Let me check the answer {answer.strip()} against the story. " + " ".join(steps)
            + f" The story ends with {gold}, which {relation} the answer {answer.strip()}. "
            + f"Therefore, the answer is {verdict}.")


def make_handler(problems: dict[str, arith.Problem]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            match = PROMPT.search(body["messages"][-1]["content"])
            problem = problems.get(match.group("question")) if match else None
            text = (verification(problem.solution, problem.answer, match.group("answer")) if problem
                    else "I cannot verify this answer.")
            reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_GET(self) -> None:  # noqa: N802  (GET /models: the check `s2r --stage data` makes before it samples)
            reply = json.dumps({"object": "list", "data": [{"id": "reference-judge", "object": "model"}]}).encode()
            self.send_response(200 if self.path.endswith("/models") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main(port: int, seed: int = 0, size: int = 200, levels: str = "1,2") -> None:
    problems = {p.problem: p for p in arith.generate(size, seed, [int(x) for x in levels.split(",")])}
    ThreadingHTTPServer(("127.0.0.1", port), make_handler(problems)).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), *(int(a) for a in sys.argv[2:4]), *sys.argv[4:5])
