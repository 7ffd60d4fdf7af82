"""Commands print what the user needs: no TensorFlow start-up chatter, and the real errors still show."""
import os
import subprocess
import sys

from facenet_mtl import quiet


def test_start_up_noise_is_recognised_and_real_lines_are_not():
    assert quiet.is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert quiet.is_noise("I0000 00:00:1796191264.067341    5431 cudart_stub.cc:31] Could not find cuda drivers")
    assert not quiet.is_noise("E0000 00:00:1796191264.067341    5431 op_kernel.cc:1838] OP_REQUIRES failed")
    assert not quiet.is_noise("error: photo.jpg: not an image")


def _run(code, verbose=False):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_tensorflow_keeps_stderr_clean_but_passes_other_lines_through():
    done = _run("import os; from facenet_mtl import quiet; tf = quiet.import_tensorflow(); "
                "tf.constant(1.0) + 1; os.write(2, b'mine\\n'); print(tf.__version__)")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "mine", done.stderr
    assert done.stdout.strip()


def test_a_command_prints_no_start_up_noise(tmp_path):
    done = _run("import sys; sys.argv = ['facenet-mtl', 'predict', '--no-detect', 'no-such.jpg']; "
                "from facenet_mtl.cli import main; main()")
    assert done.returncode == 2
    assert done.stderr.startswith("error: "), done.stderr  # the first line the user sees is the error
    assert not any(quiet.is_noise(line) for line in done.stderr.splitlines())


def test_a_line_is_printed_once_even_when_a_library_configures_the_root_logger(capsys):
    """From the second `make demo`, every trainer line came twice: once bare, once more as
    `INFO:facenet_mtl.training.trainer:` after something called `logging.basicConfig()`."""
    import logging

    from facenet_mtl.quiet import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []
    try:
        setup_logging()
        logging.basicConfig()  # what a bare logging.info(...) in any library does
        logging.getLogger("facenet_mtl.training.trainer").info("[demo] epoch 1")
        logging.getLogger("some.library").info("not shown")
        logging.getLogger("some.library").warning("a warning of another library")
    finally:
        root.handlers[:] = saved
    err = capsys.readouterr().err
    assert err.count("[demo] epoch 1") == 1 and "INFO:" not in err
    assert "not shown" not in err and "a warning of another library" in err
