"""invkit's built-in plugins, each registered through the `invkit` entry-point group like any third-party plugin."""
