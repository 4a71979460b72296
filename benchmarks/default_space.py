"""dltune's default dense space spelled out for the benchmarks' other tools (peers.py checks
it against dltune in check_space), and the data's splits."""

LAYERS = (0, 3)  # 0: no hidden layer, the linear model (issue 27)
UNITS = (16, 1024)  # log-uniform integers; one width shared by every hidden layer
ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu"]
DROPOUT = (0.0, 0.5)
LOSSES = ["categorical_crossentropy", "mean_squared_error"]
OPTIMIZERS = ["sgd", "adam", "rmsprop", "adagrad"]
LEARNING_RATE = (1e-4, 1.0)  # log-uniform
BATCH_SIZES = [16, 32, 64, 128, 256]
MAX_EPOCHS = 27
SPLITS = ("train", "val", "test")
