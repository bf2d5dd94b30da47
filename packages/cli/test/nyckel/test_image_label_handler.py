# Loupe's port onto image functions of what the Nyckel SDK's label handler tests check (they use text functions):
# labels created with and without description and metadata read back as sent, are listed, renamed and deleted,
# one at a time and in parallel.
from nyckel import ClassificationLabel, ImageClassificationFunction


def names(func: ImageClassificationFunction) -> set:
    return {label.name for label in func.list_labels()}


def test_create_read_list_delete(image_classification_function: ImageClassificationFunction) -> None:
    func = image_classification_function
    plain_id = func.create_labels([ClassificationLabel(name="Nice")])[0]
    assert func.read_label(plain_id).name == "Nice"

    rich = ClassificationLabel(name="Nicer", description="Very nice", metadata={"how nice?": "very"})
    rich_id = func.create_labels([rich])[0]
    back = func.read_label(rich_id)
    assert (back.name, back.description, back.metadata) == (rich.name, rich.description, rich.metadata)

    assert names(func) == {"Nice", "Nicer"}
    func.delete_labels([rich_id])
    assert names(func) == {"Nice"}


def test_rename(image_classification_function: ImageClassificationFunction) -> None:
    func = image_classification_function
    label_id = func.create_labels([ClassificationLabel(name="Old name")])[0]
    assert func.read_label(label_id).name == "Old name"
    func.update_label(ClassificationLabel(name="New name", id=label_id))
    assert func.read_label(label_id).name == "New name"


def test_parallel_delete(image_classification_function_with_content: ImageClassificationFunction) -> None:
    func = image_classification_function_with_content
    func.delete_labels([label.id for label in func.list_labels() if label.id])
    assert func.list_labels() == []


def test_optional_fields(image_classification_function: ImageClassificationFunction) -> None:
    func = image_classification_function
    label = ClassificationLabel(name="Nicer", description="Very nice")
    back = func.read_label(func.create_labels([label])[0])
    assert (back.name, back.description, back.metadata) == ("Nicer", "Very nice", None)
