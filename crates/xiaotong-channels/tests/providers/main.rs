//! Each adapter against a real local HTTP server (or, for e-mail, a real
//! SMTP server process) that checks requests as the provider documents them.

mod common;

mod aliyun;
mod dingtalk;
mod feishu;
mod smtp;
mod tencent;
mod webhook;
mod webpush;
mod wecom;
