"""Run by tests/annotate/test_labelstudio.py with Label Studio's own venv (.venvs/label-studio):
create a project with annotate's labelling config, import annotate's tasks.json through
`label-studio-sdk`, and print what the server then holds (each task's data and predictions) as JSON.

    python labelstudio_client.py URL TOKEN config.xml tasks.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk.client import LabelStudio


def main(url: str, token: str, config: str, tasks: str) -> None:
    ls = LabelStudio(base_url=url, api_key=token)
    project = ls.projects.create(title="segserve annotate", label_config=Path(config).read_text())
    imported = ls.projects.import_tasks(id=project.id, request=json.loads(Path(tasks).read_text()))
    held = []
    for task in ls.tasks.list(project=project.id):
        predictions = ls.predictions.list(task=task.id)
        held.append(
            {
                "data": task.data,
                "predictions": [
                    {"model_version": p.model_version, "score": p.score, "result": p.result} for p in predictions
                ],
            }
        )
    print(json.dumps({"task_count": imported.task_count, "tasks": held}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
