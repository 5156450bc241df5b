"""What a SageMaker script-mode framework image runs as its container's entry point (the `sagemaker-training`
toolkit), in the local cloud's job process: standard library only, and run as a file with the local venv's Python,
so nothing of the local cloud is imported into the job (sagemaker_runner.py starts it; gap 23 in gaps.py).

As the toolkit does: it reads `/opt/ml/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json` (under
SAGEMAKER_BASE_DIR, the toolkit's own relocation of /opt/ml), splits the hyperparameters into the `sagemaker_*`
ones and the user's (each value decoded as JSON where it parses, else kept as the string), extracts
`sagemaker_submit_directory` (a local directory or .tar.gz file, a path under /opt/ml meaning the job's, or an
s3:// URI downloaded with the job's own credentials) into /opt/ml/code unless that holds files already, checks
the source's requirements.txt against the local venv (never installing: `pip install --dry-run --no-index`), and
runs `sagemaker_program` as `python <program> --name value ...` (the user's hyperparameters sorted by name) in
/opt/ml/code, with the SM_* environment (`SM_CHANNEL_<NAME>`, `SM_CHANNELS`, `SM_HPS`, `SM_HP_<NAME>`,
`SM_MODEL_DIR`, `SM_OUTPUT_DATA_DIR`, `SM_TRAINING_ENV`, ...). Success writes /opt/ml/output/success; a failure
writes /opt/ml/output/failure unless the program wrote one (`ExecuteUserScriptError`, `InstallRequirementsError`
or `framework error` as the toolkit words them) and exits 1.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import traceback

SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)


class ClientError(Exception):
    """A user error (the toolkit's errors.ClientError): its text is the failure file."""


def called_process_error(kind, code, output, command):
    return ClientError(f'{kind}:\nExitCode {code}\nErrorMessage "{output}"\nCommand "{command}"'.strip())


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def decoded(value):
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


def env_value(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cmd_args(hyperparameters):
    args = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        elif value is None:
            value = ""
        args += [f"--{key}" if len(key) > 1 else f"-{key}", str(value)]
    return args


def training_env(base):
    config = os.path.join(base, "input", "config")
    resource = read_json(os.path.join(config, "resourceconfig.json"))
    channels = read_json(os.path.join(config, "inputdataconfig.json"))
    everything = {k: decoded(v) for k, v in read_json(os.path.join(config, "hyperparameters.json")).items()}
    framework = {k: v for k, v in everything.items() if k in SAGEMAKER_HYPERPARAMETERS or k.startswith("sagemaker_")}
    user = {k: v for k, v in everything.items() if k not in framework}
    program = framework.get("sagemaker_program")
    group = resource.get("current_group_name", "homogeneousCluster")
    groups = resource.get("instance_groups", [])
    env = {
        "additional_framework_parameters": {k: v for k, v in framework.items() if k not in SAGEMAKER_HYPERPARAMETERS},
        "channel_input_dirs": {name: os.path.join(base, "input", "data", name) for name in channels},
        "current_host": resource["current_host"],
        "current_instance_group": group,
        "current_instance_group_hosts": next((g["hosts"] for g in groups if g["instance_group_name"] == group), []),
        "current_instance_type": resource.get("current_instance_type", "local"),
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": os.environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": resource["hosts"],
        "hyperparameters": user,
        "input_config_dir": config,
        "input_data_config": channels,
        "input_dir": os.path.join(base, "input"),
        "instance_groups": [g["instance_group_name"] for g in groups],
        "instance_groups_dict": {g["instance_group_name"]: g for g in groups},
        "is_hetero": len(groups) > 1,
        "is_master": True,
        "is_modelparallel_enabled": None,
        "job_name": os.environ.get("TRAINING_JOB_NAME"),
        "log_level": framework.get("sagemaker_container_log_level", 20),
        "master_hostname": resource["hosts"][0],
        "model_dir": os.path.join(base, "model"),
        "module_dir": str(framework.get("sagemaker_submit_directory", os.path.join(base, "code"))),
        "module_name": program[:-3] if isinstance(program, str) and program.endswith(".py") else program,
        "network_interface_name": resource.get("network_interface_name", "eth0"),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "output_data_dir": os.path.join(base, "output", "data"),
        "output_dir": os.path.join(base, "output"),
        "output_intermediate_dir": os.path.join(base, "output", "intermediate"),
        "resource_config": resource,
        "user_entry_point": program,
    }
    return env, framework


def env_vars(env):
    names = {
        "hosts": "hosts",
        "network_interface_name": "network_interface_name",
        "hps": "hyperparameters",
        "user_entry_point": "user_entry_point",
        "framework_params": "additional_framework_parameters",
        "resource_config": "resource_config",
        "input_data_config": "input_data_config",
        "output_data_dir": "output_data_dir",
        "current_host": "current_host",
        "current_instance_type": "current_instance_type",
        "current_instance_group": "current_instance_group",
        "current_instance_group_hosts": "current_instance_group_hosts",
        "instance_groups": "instance_groups",
        "instance_groups_dict": "instance_groups_dict",
        "distribution_instance_groups": "distribution_instance_groups",
        "is_hetero": "is_hetero",
        "module_name": "module_name",
        "log_level": "log_level",
        "framework_module": "framework_module",
        "input_dir": "input_dir",
        "input_config_dir": "input_config_dir",
        "output_dir": "output_dir",
        "num_cpus": "num_cpus",
        "num_gpus": "num_gpus",
        "model_dir": "model_dir",
        "module_dir": "module_dir",
        "output_intermediate_dir": "output_intermediate_dir",
    }
    out = {f"SM_{name.upper()}": env_value(env[key]) for name, key in names.items()}
    out["SM_CHANNELS"] = env_value(sorted(env["channel_input_dirs"]))
    out["SM_TRAINING_ENV"] = env_value(env)
    out["SM_USER_ARGS"] = env_value(cmd_args(env["hyperparameters"]))
    for name, path in env["channel_input_dirs"].items():
        out[f"SM_CHANNEL_{name.upper()}"] = path
    for key, value in env["hyperparameters"].items():
        out[f"SM_HP_{key.upper()}"] = env_value(value)
    return out


def safe_extract(archive, path):
    root = os.path.realpath(path)
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(path, member.name))
        if os.path.commonpath([root, target]) != root:
            raise Exception("Attempted Path Traversal in Tar File")
        if member.issym() or member.islnk():
            raise Exception(f"Link in Tar File: {member.name}")
    archive.extractall(path, filter="data")


def local_path(uri, base):
    """A path the job names under /opt/ml, where the job's /opt/ml is (SAGEMAKER_BASE_DIR)."""
    if uri == "/opt/ml" or uri.startswith("/opt/ml/"):
        return os.path.join(base, uri[len("/opt/ml/") :])
    return uri


def download_and_extract(uri, path):
    """The toolkit's files.download_and_extract: nothing happens when `path` already holds files."""
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        return
    with tempfile.TemporaryDirectory() as tmp:
        if uri.startswith("s3://"):
            import boto3  # the job's own credentials: none under network isolation

            bucket, _, key = uri[len("s3://") :].partition("/")
            local = os.path.join(tmp, "tar_file")
            boto3.client("s3", region_name=os.environ.get("AWS_REGION")).download_file(bucket, key, local)
            with tarfile.open(local, mode="r:gz") as archive:
                safe_extract(archive, path)
        elif os.path.isdir(uri):
            if os.path.realpath(uri) != os.path.realpath(path):
                shutil.rmtree(path)
                shutil.copytree(uri, path)
        elif os.path.isfile(uri) and tarfile.is_tarfile(uri):
            with tarfile.open(uri, mode="r:gz") as archive:
                safe_extract(archive, path)
        elif os.path.isfile(uri):
            shutil.copy2(uri, path)
        else:
            raise FileNotFoundError(f"sagemaker_submit_directory {uri} does not exist")


def check_requirements(code_dir):
    requirements = os.path.join(code_dir, "requirements.txt")
    if not os.path.exists(requirements):
        return
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", "-r", requirements]
    done = subprocess.run(command, capture_output=True, text=True, cwd=code_dir, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise called_process_error("InstallRequirementsError", done.returncode, output, " ".join(command))


def run_program(env, program, code_dir):
    command = [sys.executable, program, *cmd_args(env["hyperparameters"])]
    print(f"Invoking script with the following command:\n\n{' '.join(command)}\n", flush=True)
    process = subprocess.Popen(command, cwd=code_dir, stderr=subprocess.PIPE, text=True, errors="replace")
    errors = []
    for line in process.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            errors = [*errors, line.rstrip()][-10:]
    code = process.wait()
    if code != 0:
        last = next((e for e in reversed(errors) if "Error" in e or "Exception" in e), errors[-1] if errors else "")
        raise called_process_error("ExecuteUserScriptError", code, last, " ".join(command))


def write_failure(base, message):
    path = os.path.join(base, "output", "failure")
    if not os.path.exists(path):  # the program's own failure file wins, as in the toolkit
        with open(path, "w", encoding="utf-8") as f:
            f.write(message)


def main():
    base = os.environ["SAGEMAKER_BASE_DIR"]
    code_dir = os.path.join(base, "code")
    try:
        env, framework = training_env(base)
        os.makedirs(env["output_data_dir"], exist_ok=True)
        program = env["user_entry_point"]
        if not program:
            raise ValueError("no sagemaker_program hyperparameter: script mode has no entry point to run")
        if "sagemaker_submit_directory" in framework:
            download_and_extract(local_path(str(framework["sagemaker_submit_directory"]), base), code_dir)
        os.makedirs(code_dir, exist_ok=True)
        check_requirements(code_dir)
        os.environ.update(env_vars(env))
        os.environ["PYTHONPATH"] = os.pathsep.join([code_dir, *filter(None, [os.environ.get("PYTHONPATH")])])
        os.environ["SAGEMAKER_JOB_NAME"] = str(framework.get("sagemaker_job_name", ""))
        os.environ["CURRENT_HOST"] = env["current_host"]
        os.environ["SAGEMAKER_REGION"] = str(framework.get("sagemaker_region", os.environ.get("AWS_REGION", "")))
        run_program(env, program, code_dir)
    except ClientError as err:
        print(str(err), file=sys.stderr, flush=True)
        write_failure(base, str(err))
        return 1
    except Exception as err:  # noqa: BLE001 - the toolkit reports any other error as a framework error
        message = f"framework error: \n{traceback.format_exc()}\n{err}"
        print(message, file=sys.stderr, flush=True)
        write_failure(base, message)
        return getattr(err, "errno", None) or 1
    print("Reporting training SUCCESS", flush=True)
    with open(os.path.join(base, "output", "success"), "w", encoding="utf-8"):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
