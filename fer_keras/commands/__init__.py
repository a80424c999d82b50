"""The commands of `fer-keras` (train, evaluate, predict, export, demo).

Each module's `main(argv, prog)` parses its arguments, chooses the Keras
backend before Keras is imported, and calls the package. `fer_keras.__main__`
dispatches the installed `fer-keras COMMAND`; `train.py` and the other
scripts of a checkout call the same functions.
"""

# Name -> what it does, in the order `fer-keras --help` lists them.
COMMANDS = {
    "train": "train a model (resumes an interrupted run with the same command)",
    "evaluate": "accuracy, per-class metrics and confusion matrix on the test split",
    "predict": "the emotion of each face in photos, folders, videos or a webcam",
    "export": "write a model as .tflite, .onnx or a SavedModel",
    "demo": "a local web page that labels the faces in a photo",
}
