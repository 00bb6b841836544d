pytest_plugins = ["theta.testing"]
