"""Other inference languages, mapped onto the one predict path: MLflow's scoring protocol
(`mlflow`) and the Open Inference Protocol v2 of KServe and Triton (`inference_v2`).

Each route resolves its model through the `ModelResolver` and predicts through
`check_prediction_size` and `predict_off_loop`, as the native predict route does; only
the request's and the answer's shapes are the protocol's own. Their errors are written by
`service.api.problems.answer`, in each protocol's language.
"""
