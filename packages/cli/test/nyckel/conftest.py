# Fixtures for Loupe's port of the Nyckel SDK's label and sample handler tests onto image functions: the SDK's own
# fixtures (its tests/conftest.py, loaded by path under another name), plus an image function with content.
import importlib.util
import os
import sys
from typing import Iterator

import pytest

_sdk_tests = os.path.join(os.getcwd(), "tests")
sys.path.insert(0, _sdk_tests)
_spec = importlib.util.spec_from_file_location("nyckel_sdk_conftest", os.path.join(_sdk_tests, "conftest.py"))
sdk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sdk)

from nyckel import ClassificationAnnotation, ClassificationLabel, ImageClassificationFunction, ImageClassificationSample  # noqa: E402

auth_test_credentials = sdk.auth_test_credentials
image_classification_function = sdk.image_classification_function
make_random_image = sdk.make_random_image


@pytest.fixture
def image_classification_function_with_content(auth_test_credentials) -> Iterator[ImageClassificationFunction]:
    """The SDK's text_classification_function_with_content, with images for texts."""
    func = ImageClassificationFunction.create("PYTHON-SDK IMAGE TEST FUNCTION", auth_test_credentials)
    func.create_labels([ClassificationLabel(name="Nice"), ClassificationLabel(name="Boo")])
    nice = ClassificationAnnotation(label_name="Nice")
    boo = ClassificationAnnotation(label_name="Boo")
    samples = [
        ImageClassificationSample(data=make_random_image(), external_id="1", annotation=nice),
        ImageClassificationSample(data=make_random_image(), external_id="2", annotation=nice),
        ImageClassificationSample(data=make_random_image(), external_id="3", annotation=boo),
        ImageClassificationSample(data=make_random_image(), external_id="4", annotation=boo),
        ImageClassificationSample(data=make_random_image(), external_id="5"),
    ]
    func.create_samples(samples)
    sdk.hold_until_list_samples_available(func, len(samples))
    yield func
    func.delete()
