"""Every registered model: output shapes, gradients reach every parameter, padding invariance."""
from __future__ import annotations

import pytest
import torch

from tiny_models import tiny_bert_config
from models import MODELS, build_model, count_parameters

TEXT_KWARGS = {"vocab_size": 30, "num_classes": 6}
TEXT_MODELS = ("rnn", "transformer", "pretrained")


def text_model(name: str, **kwargs) -> torch.nn.Module:
    """A text model of the registry with a 30-token vocabulary and 6 classes."""
    if name == "pretrained":
        return build_model(name, encoder_config=tiny_bert_config(), num_classes=6, **kwargs)
    return build_model(name, **TEXT_KWARGS, **kwargs)


def example(name: str, **kwargs):
    """A model and a small batch of its inputs."""
    torch.manual_seed(0)
    if name in TEXT_MODELS:
        model = text_model(name, **kwargs)
        lengths = torch.tensor([5, 3, 1, 4])
        token_ids = torch.randint(2, 30, (4, 5)) * (torch.arange(5)[None, :] < lengths[:, None])
        return model, (token_ids, lengths)
    if name == "timm":
        return build_model(name, num_classes=10, **kwargs), torch.randn(4, 3, 32, 32)
    return build_model(name, **kwargs), torch.randn(4, 1, 28, 28)


VARIANTS = [("cnn", {}), ("cnn", {"batch_norm": True, "dropout": 0.2, "activation": "gelu"}),
            ("dnn", {}), ("dnn", {"batch_norm": True, "dropout": 0.2, "activation": "gelu"}),
            ("resnet", {"width": 4, "depth": 8}), ("resnet", {"width": 4, "depth": 14, "activation": "gelu",
                                                             "dropout": 0.2, "flip_average": True})]
VARIANTS += [("rnn", {"cell": cell, "pooling": pooling, "bidirectional": bidirectional, "num_layers": layers})
             for cell in ("rnn", "gru", "lstm") for pooling in ("last", "mean", "max", "attention")
             for bidirectional, layers in ((False, 1), (True, 2))]
VARIANTS += [("transformer", {"pooling": pooling}) for pooling in ("cls", "mean", "max", "attention")]
VARIANTS += [("pretrained", {}), ("pretrained", {"dropout": 0.0})]
VARIANTS += [("timm", {"architecture": "test_efficientnet"}),
             ("timm", {"architecture": "test_efficientnet", "dropout": 0.2})]


def test_registry_covers_every_variant():
    assert {name for name, _ in VARIANTS} == set(MODELS)


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=lambda v: str(v))
def test_logits_shape_and_every_parameter_gets_a_gradient(name, kwargs):
    model, inputs = example(name, **kwargs)
    logits = model(inputs)
    assert logits.shape == (4, 6 if name in TEXT_MODELS else 10)
    logits.logsumexp(dim=1).sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="choose from: cnn, dnn, pretrained, resnet, rnn, timm, transformer"):
        build_model("densenet")


def test_seed_cnn_has_the_seed_architecture():
    model = build_model("cnn")
    assert model.classifier[2].in_features == 3136 and model.classifier[2].out_features == 128
    assert sum(p.numel() for p in model.parameters()) == 421_642


PADDING_CASES = [("rnn", {"cell": cell, "pooling": pooling, "bidirectional": True})
                 for cell in ("rnn", "gru", "lstm") for pooling in ("last", "mean", "max", "attention")]
PADDING_CASES += [("transformer", {"pooling": pooling}) for pooling in ("cls", "mean", "max", "attention")]
PADDING_CASES += [("pretrained", {})]


@pytest.mark.parametrize("name,kwargs", PADDING_CASES, ids=lambda v: str(v))
def test_padding_never_changes_a_prediction(name, kwargs):
    torch.manual_seed(0)
    model = text_model(name, **kwargs).eval()
    question = torch.tensor([[5, 9, 3]])
    alone = model((question, torch.tensor([3])))
    batch = torch.zeros(3, 8, dtype=torch.long)
    batch[0, :7] = torch.arange(2, 9)
    batch[1, :3] = question[0]
    batch[2, :8] = torch.arange(10, 18)
    padded = model((batch, torch.tensor([7, 3, 8])))
    assert torch.allclose(alone[0], padded[1], atol=1e-5)


def test_cnn_pools_before_relu_without_changing_the_function():
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    conv1, conv2 = model.features[0], model.features[3]
    images = torch.randn(5, 1, 28, 28)
    pool = torch.nn.functional.max_pool2d
    reference = pool(torch.relu(conv2(pool(torch.relu(conv1(images)), 2))), 2)  # the seed's order
    assert torch.allclose(model.features(images), reference, atol=1e-6)


def test_a_checkpoint_that_names_word_dropout_still_rebuilds_its_model():
    from utils.storage.checkpoint import model_from_checkpoint
    torch.manual_seed(0)
    model = build_model("rnn", **TEXT_KWARGS).eval()
    checkpoint = {"model_name": "rnn", "model_kwargs": {**TEXT_KWARGS, "word_dropout": 0.1},
                  "model": model.state_dict()}  # as checkpoints of recurrent models record it
    inputs = (torch.randint(2, 30, (3, 7)), torch.tensor([7, 4, 1]))
    assert torch.equal(model_from_checkpoint(checkpoint)(inputs), model(inputs))


@pytest.mark.parametrize("name,kwargs", [case for case in VARIANTS if case[0] == "rnn"], ids=lambda v: str(v))
def test_masked_recurrent_path_equals_the_packed_one(name, kwargs):
    model, inputs = example(name, **kwargs)
    model.eval()
    token_ids, lengths = inputs
    padded = torch.cat([token_ids, torch.zeros(4, 3, dtype=torch.long)], dim=1)  # extra padding too
    assert torch.allclose(model.forward_masked((padded, lengths)), model((token_ids, lengths)), atol=1e-5)


def test_resnet20_has_resnet20s_size_and_layout():
    model = build_model("resnet")  # defaults: depth 20, width 16
    assert count_parameters(model) < 500_000 and abs(count_parameters(model) - 270_000) < 1_000
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19  # stem + 9 blocks x 2; with the Linear layer: 20 layers
    features = model.blocks(model.stem(torch.randn(2, 1, 28, 28)))
    assert features.shape == (2, 64, 7, 7)  # widths 16, 32, 64; 28 -> 14 -> 7 pixels
    with pytest.raises(ValueError, match="6n \\+ 2"):
        build_model("resnet", depth=10)


def test_resnet_flip_average_is_the_mean_over_mirror_images_in_eval_mode_only():
    torch.manual_seed(0)
    model = build_model("resnet", width=4, depth=8, flip_average=True).eval()
    images = torch.randn(3, 1, 28, 28)
    expected = (model.logits(images) + model.logits(images.flip(-1))) / 2
    torch.testing.assert_close(model(images), expected)
    torch.testing.assert_close(model(images.flip(-1)), model(images), rtol=1e-5, atol=1e-6)  # mirror-invariant
    model.train()
    assert not torch.allclose(model(images), model(images.flip(-1)))
