# Loupe's port onto image functions of what the Nyckel SDK's sample handler tests check (they use text functions):
# samples are deleted in parallel, the same image posted twice is one sample, annotations are removed and changed,
# and the list is newest first.
from conftest import make_random_image
from nyckel import ClassificationAnnotation, ClassificationLabel, ImageClassificationFunction, ImageClassificationSample


def test_delete_all(image_classification_function_with_content: ImageClassificationFunction) -> None:
    func = image_classification_function_with_content
    samples = func.list_samples()
    assert len(samples) == 5
    func.delete_samples([sample.id for sample in samples if sample.id])
    assert func.list_samples() == []


def test_same_image_twice_is_one_sample(image_classification_function: ImageClassificationFunction) -> None:
    image = make_random_image()
    ids = image_classification_function.create_samples([ImageClassificationSample(data=image), ImageClassificationSample(data=image)])
    assert len(ids) == 2 and ids[0] == ids[1]


def test_update_annotation(image_classification_function: ImageClassificationFunction) -> None:
    func = image_classification_function
    func.create_labels([ClassificationLabel(name="Nice"), ClassificationLabel(name="Bad")])
    sample = ImageClassificationSample(data=make_random_image(), external_id="1", annotation=ClassificationAnnotation(label_name="Nice"))
    sample_id = func.create_samples([sample])[0]
    sample = func.read_sample(sample_id)
    assert sample.annotation and sample.annotation.label_name == "Nice"

    sample.annotation = None
    func.update_annotation(sample)
    sample = func.read_sample(sample_id)
    assert sample.annotation is None

    sample.annotation = ClassificationAnnotation(label_name="Bad")
    func.update_annotation(sample)
    sample = func.read_sample(sample_id)
    assert sample.annotation and sample.annotation.label_name == "Bad"


def test_newest_first(image_classification_function: ImageClassificationFunction) -> None:
    func = image_classification_function
    func.create_samples([ImageClassificationSample(data=make_random_image()) for _ in range(10)])
    newest = func.create_samples([ImageClassificationSample(data=make_random_image())])[0]
    listed = func.list_samples()
    assert len(listed) == 11
    assert listed[0].id == newest
