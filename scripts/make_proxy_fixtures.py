"""Copy a few real recorded responses (JSON, SSE, errors) into tests/fixtures/proxy/responses.json
for the proxy's byte-for-byte replay test. Run from the repository root:

    python3 scripts/make_proxy_fixtures.py /work/shared/recordings/ruby-openai
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

PICKS = [  # (recording file, status wanted)
    ("assistants_create.yml", 200),
    ("runs_streamed_create.yml", 200),
    ("files_upload_file.yml", 200),
    ("runs_create.yml", 400),
    ("run_steps_retrieve.yml", 404),
    ("vector_store_file_batches_list.yml", 500),
]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def main(source: str, out: str = "tests/fixtures/proxy/responses.json") -> None:
    fixtures = []
    for file_name, status in PICKS:
        interactions = yaml.safe_load((Path(source) / file_name).read_text())["http_interactions"]
        for interaction in interactions:
            response = interaction["response"]
            if response["status"]["code"] != status:
                continue
            url = urlsplit(interaction["request"]["uri"])
            headers = [[name, value] for name, values in response["headers"].items()
                       for value in values if name.lower() not in HOP_BY_HOP]
            fixtures.append({
                "name": f"{file_name.removesuffix('.yml')}_{status}",
                "method": interaction["request"]["method"].upper(),
                "path": url.path + (f"?{url.query}" if url.query else ""),
                "status": status,
                "reason": response["status"]["message"],
                "headers": headers,
                "body": response["body"]["string"],
            })
            break
    Path(out).write_text(json.dumps(fixtures, indent=1) + "\n")
    print(f"wrote {len(fixtures)} responses to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
