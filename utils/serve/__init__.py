"""Classifying with a trained model: input preprocessing, predictors, ONNX export and verification."""
