"""CloudFormation intrinsics as the local cloud resolves them."""

from __future__ import annotations

import pytest

from localcloud.intrinsics import Scope, UnsupportedError, dependencies, resolve


@pytest.fixture
def scope() -> Scope:
    return Scope(
        stack_name="s",
        account="123456789012",
        region="eu-west-1",
        parameters={"Stage": "dev"},
        refs={"Bucket": "my-bucket"},
        attributes={"Bucket": {"Arn": "arn:aws:s3:::my-bucket"}},
        exports={"s:Table": "ledger-table"},
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Bucket"}, "my-bucket"),
        ({"Ref": "AWS::Region"}, "eu-west-1"),
        ({"Ref": "Stage"}, "dev"),
        ({"Fn::GetAtt": ["Bucket", "Arn"]}, "arn:aws:s3:::my-bucket"),
        ({"Fn::GetAtt": "Bucket.Arn"}, "arn:aws:s3:::my-bucket"),
        ({"Fn::Join": ["-", ["a", {"Ref": "AWS::AccountId"}]]}, "a-123456789012"),
        (
            {"Fn::Sub": "${Bucket}/${AWS::Partition}/${Bucket.Arn}/${!Literal}"},
            "my-bucket/aws/arn:aws:s3:::my-bucket/${Literal}",
        ),
        ({"Fn::Sub": ["${X}-${Bucket}", {"X": {"Ref": "Stage"}}]}, "dev-my-bucket"),
        ({"Fn::ImportValue": "s:Table"}, "ledger-table"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
        ({"k": {"Ref": "AWS::NoValue"}, "j": [1, {"Ref": "AWS::NoValue"}]}, {"j": [1]}),
    ],
)
def test_resolves(scope, value, expected):
    assert resolve(value, scope) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::If": ["C", 1, 2]}, "intrinsic function Fn::If"),
        ({"Ref": "Missing"}, "Ref to 'Missing'"),
        ({"Fn::GetAtt": ["Bucket", "WebsiteURL"]}, "Fn::GetAtt Bucket.WebsiteURL"),
        ({"Fn::ImportValue": "nobody:exports"}, "no stack exports it"),
    ],
)
def test_unsupported_fails_loudly_with_its_name(scope, value, message):
    with pytest.raises(UnsupportedError, match=message.replace("(", r"\(").replace(".", r"\.")):
        resolve(value, scope)


def test_dependencies():
    value = {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Y", "Arn"]},
        "C": {"Fn::Sub": "${Z.Arn}-${AWS::Region}"},
        "D": {"Ref": "AWS::AccountId"},
    }
    assert dependencies(value) == {"X", "Y", "Z"}
