"""POST /v1/trace reproduces the notebook's first backprop step (product.md)."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

# np.random.seed(0); b1 = randn(2, 1); W1 = randn(2, 2); b2 = randn(1, 1); W2 = randn(1, 2)
START = {
    "layers": [
        {
            "weights": [
                [0.9787379841057392, 2.240893199201458],
                [1.8675579901499675, -0.977277879876411],
            ],
            "bias": [1.764052345967664, 0.4001572083672233],
        },
        {"weights": [[-0.1513572082976979, -0.10321885179355784]], "bias": [0.9500884175255894]},
    ]
}
NOTEBOOK_STEP = {
    "network": {"layers": [2, 2, 1], "hidden_activation": "relu", "output_activation": "identity"},
    "parameters": START,
    "input": [1, 1],
    "target": [1],
    "loss": "mse",
    "learning_rate": 0.01,
}


def close(actual: object, expected: object) -> bool:
    return bool(np.allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=1e-7))


@pytest.mark.parametrize(
    ("update_rule", "layer1_delta", "updated_w1", "updated_b1"),
    [
        (
            "dirty",
            [0.09809116, 0.08542005],
            [[0.97775707, 2.23991229], [1.86670379, -0.97813208]],
            [1.76307143, 0.39930301],
        ),
        # The standard rule propagates through the old W2.
        ("standard", [0.1418861, 0.09675998], None, None),
    ],
)
def test_trace_returns_the_notebooks_golden_numbers(
    client: TestClient,
    update_rule: str,
    layer1_delta: list[float],
    updated_w1: list[list[float]] | None,
    updated_b1: list[float] | None,
) -> None:
    response = client.post("/v1/trace", json={**NOTEBOOK_STEP, "update_rule": update_rule})

    assert response.status_code == 200, response.text
    trace = response.json()
    assert close(trace["forward"][0]["aggregate"], [4.98368353, 1.29043732])
    assert close(trace["forward"][0]["activation"], [4.98368353, 1.29043732])
    assert close(trace["output"], [0.06257453])
    assert close(trace["output_error"], [-0.93742547])
    assert close(trace["backward"][1]["weight_gradient"], [[-4.67183186, -1.20968881]])
    assert close(trace["updated"]["layers"][1]["weights"], [[-0.10463889, -0.09112196]])
    assert close(trace["updated"]["layers"][1]["bias"], [0.95946267])
    assert close(trace["backward"][0]["delta"], layer1_delta)
    assert close(
        trace["backward"][0]["weight_gradient"], [layer1_delta[:1] * 2, layer1_delta[1:] * 2]
    )
    if updated_w1 is not None:
        assert close(trace["updated"]["layers"][0]["weights"], updated_w1)
        assert close(trace["updated"]["layers"][0]["bias"], updated_b1)


def test_trace_rejects_parameters_of_the_wrong_shape(client: TestClient) -> None:
    body = {**NOTEBOOK_STEP, "parameters": {"layers": [START["layers"][0], START["layers"][0]]}}

    response = client.post("/v1/trace", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "parameters", "layers", 1, "weights"]
