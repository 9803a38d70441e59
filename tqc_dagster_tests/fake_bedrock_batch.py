"""A fake Amazon Bedrock control plane for batch inference on 127.0.0.1, speaking botocore's REST-JSON wire format.

boto3's real `bedrock` client talks to it through `endpoint_url`: CreateModelInvocationJob
(`POST /model-invocation-job`), GetModelInvocationJob (`GET /model-invocation-job/{id}`),
ListModelInvocationJobs (`GET /model-invocation-jobs`), StopModelInvocationJob
(`POST /model-invocation-job/{id}/stop`), paths and shapes from botocore's `bedrock` service model.
Errors are real REST-JSON errors (`x-amzn-ErrorType` header, `{"message"}` body): ThrottlingException
(HTTP 429, the next `throttle` requests), ValidationException
(bad name, role, model, invocation type, input missing, fewer than `min_records` records, stopping a finished job),
ServiceQuotaExceededException (more than `max_jobs` jobs Submitted..InProgress), ConflictException
(a job name taken by another token), ResourceNotFoundException.

Its state moves only when a test calls `advance()` (Submitted -> InProgress -> the job's outcome; Stopping
-> Stopped); times come from an injected `clock`. On Completed, PartiallyCompleted or Expired it writes
`<output s3Uri>/<job id>/<input file name>.out` and `manifest.json.out` into the S3 server, made from the
requests: judge arrays the project's reader parses, every `error_every`-th record a Bedrock error, every
`truncate_every`-th cut at max_tokens; PartiallyCompleted leaves out the last `missing` records, Expired
writes the first half; Failed writes nothing. A job of the Converse invocation type (`modelInvocationType`, bulk
synthesis) answers in Converse responses with the samples the fake Converse endpoint would write for the same
request (fake_bedrock.generated_samples), except every `wrong_bucket_every`-th record, whose samples are all
outside their group (the client rejects the answer), besides the errors and cut answers above.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from tqc_dagster.core.batch_outputs import prompt_fields
from tqc_dagster_tests.fake_bedrock import generated_samples, prompt_text

ACCOUNT, REGION = "123456789012", "us-east-1"
NAME = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
TOKEN = re.compile(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}")
ROLE = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
IN_FLIGHT = ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping")
OUTCOMES = ("Completed", "PartiallyCompleted", "Failed", "Expired")
MESSAGES = {
    "Failed": "Job failed: the service role could not read the input: Access Denied",
    "Expired": "Job expired: the job did not finish within its timeoutDurationInHours",
    "PartiallyCompleted": "Some records could not be processed",
}


def _epoch(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class FakeBedrockBatch:
    """The control plane's state; `s3` is a boto3 S3 client of the loopback S3 server the jobs read and write."""

    s3: object
    clock: Callable[[], datetime] = lambda: datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    models: tuple[str, ...] = ("anthropic.claude-3-5-sonnet-20241022-v2:0", "us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    max_jobs: int = 10
    min_records: int = 100
    error_every: int = 40
    truncate_every: int = 55
    missing: int = 3
    wrong_bucket_every: int = 7
    outcomes: dict[str, str] = field(default_factory=dict)  # job name -> outcome (default Completed)
    throttle: int = 0  # the next this many requests are answered 429 ThrottlingException (botocore retries them)
    jobs: dict[str, dict] = field(default_factory=dict)  # job id -> job
    calls: list[tuple[str, str]] = field(default_factory=list)  # (operation, job name or id)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the API -----------------------------------------------------------------------------------

    def create(self, body: dict) -> dict:
        name, token = body.get("jobName", ""), body.get("clientRequestToken")
        self.calls.append(("CreateModelInvocationJob", name))
        if token is not None and not TOKEN.fullmatch(token):
            raise _ApiError(400, "ValidationException", f"1 validation error detected: Value '{token}' at 'clientRequestToken' failed to satisfy constraint")
        for job in self.jobs.values():
            if token is not None and job["clientRequestToken"] == token:
                return {"jobArn": job["jobArn"]}  # the same request again: the job already made, no error
        if not NAME.fullmatch(name) or len(name) > 63:
            raise _ApiError(400, "ValidationException", f"1 validation error detected: Value '{name}' at 'jobName' failed to satisfy constraint")
        if not ROLE.fullmatch(body.get("roleArn", "")):
            raise _ApiError(400, "ValidationException", "1 validation error detected: Value at 'roleArn' failed to satisfy constraint")
        if body.get("modelInvocationType", "InvokeModel") not in ("InvokeModel", "Converse"):
            raise _ApiError(400, "ValidationException", f"1 validation error detected: Value '{body['modelInvocationType']}' at 'modelInvocationType' failed to satisfy constraint")
        if body.get("modelId") not in self.models:
            raise _ApiError(400, "ValidationException", f"The provided model identifier is invalid: {body.get('modelId')}")
        if any(job["jobName"] == name for job in self.jobs.values()):
            raise _ApiError(409, "ConflictException", f"A job with the name {name} already exists")
        records = self._records(body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        if len(records) < self.min_records:
            raise _ApiError(400, "ValidationException", f"Batch job has {len(records)} records, fewer than the minimum of {self.min_records}")
        if sum(job["status"] in IN_FLIGHT for job in self.jobs.values()) >= self.max_jobs:
            raise _ApiError(400, "ServiceQuotaExceededException", f"Sum of in-progress and submitted batch inference jobs exceeds {self.max_jobs}")
        job_id = hashlib.sha256(f"{name}|{len(self.jobs)}".encode()).hexdigest()[:12]
        now = _epoch(self.clock())
        self.jobs[job_id] = {
            "jobArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{job_id}", "jobName": name, "modelId": body["modelId"],
            "clientRequestToken": token or "", "roleArn": body["roleArn"], "status": "Submitted", "submitTime": now, "lastModifiedTime": now,
            "inputDataConfig": body["inputDataConfig"], "outputDataConfig": body["outputDataConfig"],
            "timeoutDurationInHours": body.get("timeoutDurationInHours", 24), "totalRecordCount": len(records),
            "modelInvocationType": body.get("modelInvocationType", "InvokeModel"),
        }
        return {"jobArn": self.jobs[job_id]["jobArn"]}

    def get(self, identifier: str) -> dict:
        job = self._job(identifier)
        self.calls.append(("GetModelInvocationJob", job["jobName"]))
        return job

    def list(self, query: dict[str, str]) -> dict:
        self.calls.append(("ListModelInvocationJobs", query.get("nameContains", "")))
        jobs = [job for job in self.jobs.values() if query.get("nameContains", "") in job["jobName"]]
        jobs = [job for job in jobs if "statusEquals" not in query or job["status"] == query["statusEquals"]]
        jobs.sort(key=lambda job: (job["submitTime"], job["jobArn"]), reverse=query.get("sortOrder") == "Descending")
        start, size = int(query.get("nextToken") or 0), int(query.get("maxResults") or 1000)
        page = {"invocationJobSummaries": jobs[start : start + size]}
        if start + size < len(jobs):
            page["nextToken"] = str(start + size)
        return page

    def stop(self, identifier: str) -> dict:
        job = self._job(identifier)
        self.calls.append(("StopModelInvocationJob", job["jobName"]))
        if job["status"] not in IN_FLIGHT:
            raise _ApiError(400, "ValidationException", f"Job {job['jobName']} is {job['status']} and cannot be stopped")
        self._set(job, "Stopping")
        return {}

    def _job(self, identifier: str) -> dict:
        job = self.jobs.get(identifier.rsplit("/", 1)[-1])
        if job is None:
            raise _ApiError(404, "ResourceNotFoundException", f"The job {identifier} does not exist")
        return job

    # --- moving time on --------------------------------------------------------------------------------

    def advance(self, hours: float = 1.0) -> None:
        """One step for every job not finished: Submitted -> InProgress -> its outcome; Stopping -> Stopped."""
        with self.lock:
            for job in self.jobs.values():
                if job["status"] == "Submitted":
                    self._set(job, "InProgress")
                elif job["status"] == "InProgress":
                    self._finish(job, self.outcomes.get(job["jobName"], "Completed"))
                elif job["status"] == "Stopping":
                    self._set(job, "Stopped", "Stopped by the user")
        base = self.clock
        self.clock = lambda: base() + timedelta(hours=hours)

    def _set(self, job: dict, status: str, message: str | None = None) -> None:
        job.update(status=status, lastModifiedTime=_epoch(self.clock()))
        if message:
            job["message"] = message
        if status not in IN_FLIGHT:
            job["endTime"] = job["lastModifiedTime"]

    def _finish(self, job: dict, outcome: str) -> None:
        self._set(job, outcome, MESSAGES.get(outcome))
        if outcome == "Failed":
            job.update(processedRecordCount=0, successRecordCount=0, errorRecordCount=0)
            return
        records = self._records(job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        if outcome == "PartiallyCompleted":
            records = records[: len(records) - self.missing]
        elif outcome == "Expired":
            records = records[: len(records) // 2]
        self._write_outputs(job, records)

    # --- the outputs -----------------------------------------------------------------------------------

    def _records(self, uri: str) -> list[dict]:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        try:
            text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as error:  # noqa: BLE001  (a missing object or bucket: Bedrock's validation error)
            raise _ApiError(400, "ValidationException", f"Unable to read the input {uri}: {error}") from None
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _write_outputs(self, job: dict, records: list[dict]) -> None:
        job_id = job["jobArn"].rsplit("/", 1)[-1]
        input_key = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].rsplit("/", 1)[-1]
        bucket, prefix = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].removeprefix("s3://").split("/", 1)
        folder = f"{prefix.rstrip('/')}/{job_id}" if prefix.strip("/") else job_id
        lines, errors, input_tokens, output_tokens = [], 0, 0, 0
        answer = self._converse_answer if job["modelInvocationType"] == "Converse" else self._answer
        for index, record in enumerate(records, start=1):
            line = answer(record, index)
            errors += "error" in line
            usage = line.get("modelOutput", {}).get("usage", {})
            input_tokens += usage.get("input_tokens", usage.get("inputTokens", 0))
            output_tokens += usage.get("output_tokens", usage.get("outputTokens", 0))
            lines.append(json.dumps(line, ensure_ascii=False))
        body = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
        self.s3.put_object(Bucket=bucket, Key=f"{folder}/{input_key}.out", Body=body)
        manifest = {"totalRecordCount": job["totalRecordCount"], "processedRecordCount": len(records), "successRecordCount": len(records) - errors,
                    "errorRecordCount": errors, "inputTokenCount": input_tokens, "outputTokenCount": output_tokens}
        self.s3.put_object(Bucket=bucket, Key=f"{folder}/manifest.json.out", Body=(json.dumps(manifest) + "\n").encode())
        job.update(processedRecordCount=len(records), successRecordCount=len(records) - errors, errorRecordCount=errors)

    def _answer(self, record: dict, index: int) -> dict:
        """The judge's reply to one request: scores drawn from the record id's hash, so every run writes the same."""
        request = record["modelInput"]
        if index % self.error_every == 0:
            return {**record, "error": {"errorCode": 429, "errorMessage": "ThrottlingException: Too many requests, please wait before trying again."}}
        prompt = request["messages"][0]["content"][0]["text"]
        ids = [int(i) for i in re.findall(r'<translation id="(\d+)">', prompt)]
        _, source, *texts = prompt_fields(prompt, ids)
        entries = []
        for translation_id, text in zip(ids, texts):
            digest = hashlib.sha256(f"{record['recordId']}|{translation_id}".encode()).digest()
            scores = [5.0 if digest[c] % 4 else 5.0 - (digest[c] % 9) / 2 for c in range(7)]
            entries.append({"id": translation_id, "thought": f"The translation of {source[:40]!r} reads as {str(text)[:40]!r}.", "scores": scores})
        text = "\n" + json.dumps(entries, ensure_ascii=False) + "\n"
        stop, sequence = "stop_sequence", (request.get("stop_sequences") or [None])[0]
        if index % self.truncate_every == 0:
            text, stop, sequence = text[: len(text) // 2], "max_tokens", None
        usage = {"input_tokens": len(json.dumps(request)) // 3, "output_tokens": len(text) // 3 + 2}
        output = {"id": f"msg_bdrk_{hashlib.sha256(record['recordId'].encode()).hexdigest()[:24]}", "type": "message", "role": "assistant",
                  "model": "claude", "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": sequence, "usage": usage}
        return {**record, "modelOutput": output}


    def _converse_answer(self, record: dict, index: int) -> dict:
        """A synthesis reply in the Converse response shape: the samples of the group the request names."""
        if index % self.error_every == 0:
            return {**record, "error": {"errorCode": 429, "errorMessage": "ThrottlingException: Too many requests, please wait before trying again."}}
        request = record["modelInput"]
        text, stop = json.dumps(generated_samples(prompt_text(request), shift_bucket=index % self.wrong_bucket_every == 0), ensure_ascii=False), "end_turn"
        if index % self.truncate_every == 0:
            text, stop = text[: len(text) // 2], "max_tokens"
        usage = {"inputTokens": len(json.dumps(request)) // 3, "outputTokens": len(text) // 3 + 2}
        output = {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop,
                  "usage": {**usage, "totalTokens": usage["inputTokens"] + usage["outputTokens"]}, "metrics": {"latencyMs": 1200}}
        return {**record, "modelOutput": output}


def _handler(fake: FakeBedrockBatch):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _answer(self, status: int, body: dict, error: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                with fake.lock:
                    if fake.throttle > 0:
                        fake.throttle -= 1
                        fake.calls.append(("Throttled", url.path))
                        raise _ApiError(429, "ThrottlingException", "Too many requests, please wait before trying again.")
                    if method == "POST" and parts == ["model-invocation-job"]:
                        result = fake.create(body)
                    elif method == "GET" and len(parts) == 2 and parts[0] == "model-invocation-job":
                        result = fake.get(parts[1])
                    elif method == "GET" and parts == ["model-invocation-jobs"]:
                        result = fake.list(query)
                    elif method == "POST" and len(parts) == 3 and parts[0] == "model-invocation-job" and parts[2] == "stop":
                        result = fake.stop(parts[1])
                    else:
                        raise _ApiError(404, "UnknownOperationException", f"{method} {url.path}")
            except _ApiError as error:
                self._answer(error.status, {"message": error.message}, error.code)
                return
            self._answer(200, result)

        def do_GET(self) -> None:  # noqa: N802
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

    return Handler


@contextmanager
def running_fake_batch(s3_client, **settings) -> Iterator[tuple[FakeBedrockBatch, str]]:
    """(the fake, its endpoint URL) on a free loopback port, shut down on exit."""
    fake = FakeBedrockBatch(s3=s3_client, **settings)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
