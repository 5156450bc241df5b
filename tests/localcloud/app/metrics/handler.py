"""Test function of the local-cloud test app: prints its event's metrics as one Embedded Metric Format line,
shaped as aws-lambda-powertools Metrics prints it (written by hand: no dependency), among ordinary log lines."""

import json
import time


def handler(event, context):
    print("emitting metrics")
    document = {
        "_aws": {
            "Timestamp": event.get("timestamp", int(time.time() * 1000)),
            "CloudWatchMetrics": [
                {
                    "Namespace": event["namespace"],
                    "Dimensions": event.get("dimension_sets", [list(event.get("dimensions", {}))]),
                    "Metrics": [{"Name": name, "Unit": event.get("unit", "None")} for name in event["metrics"]],
                }
            ],
        },
        **event.get("dimensions", {}),
        **event["metrics"],
        **event.get("properties", {}),
    }
    print(json.dumps(document))
    return {"printed": document}
