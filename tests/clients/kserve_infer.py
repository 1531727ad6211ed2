"""Classify the example penguins through the kserve SDK's REST client (run in its own venv).

Usage: python kserve_infer.py BASE_URL MODEL. Prints one JSON object: the server's
liveness and readiness as the client reads them, the model version and the outputs.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

# The example penguins (Adelie, Chinstrap, Gentoo) in the API's field order, codes for island and sex.
MATRIX = [
    [1, 39.1, 18.7, 181, 3750, 1, 2007],
    [3, 46.5, 17.9, 192, 3500, 0, 2007],
    [2, 46.1, 13.2, 211, 4500, 0, 2007],
]
FIELDS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


async def main(base_url: str, model: str) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        live = await client.is_server_live(base_url)
        ready = await client.is_server_ready(base_url)
        model_ready = await client.is_model_ready(base_url, model)

        matrix = InferInput(name="penguins", shape=[3, 7], datatype="FP64")
        matrix.set_data_from_numpy(np.array(MATRIX, dtype=np.float64))
        answer = await client.infer(
            base_url, InferRequest(model_name=model, infer_inputs=[matrix], request_id="kserve-1"), model_name=model
        )

        columns = []
        for position, field in enumerate(FIELDS):
            values = [row[position] for row in MATRIX]
            if field == "island":
                tensor = InferInput(name=field, shape=[3], datatype="BYTES", data=["Torgersen", "Dream", "Biscoe"])
            elif field == "sex":
                tensor = InferInput(name=field, shape=[3], datatype="BYTES", data=["male", "female", "female"])
            else:
                tensor = InferInput(name=field, shape=[3], datatype="FP64", data=[float(v) for v in values])
            columns.append(tensor)
        by_field = await client.infer(base_url, InferRequest(model_name=model, infer_inputs=columns), model_name=model)
    finally:
        await client.close()

    def outputs(response) -> dict:
        return {output.name: output.as_numpy().tolist() for output in response.outputs}

    return {
        "live": live,
        "ready": ready,
        "model_ready": model_ready,
        "id": answer.id,
        "model_version": answer.model_version,
        "matrix": outputs(answer),
        "by_field": outputs(by_field),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
