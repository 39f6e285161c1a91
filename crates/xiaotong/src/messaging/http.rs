//! Message-center endpoints.

use super::model::*;
use super::service;
use crate::app::App;
use crate::directory::model::Page;
use crate::error::{Error, Problem, Result};
use crate::http::extract::{Auth, Body, Id, Q};
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, create_message))
        .routes(routes!(get_message, update_message))
        .routes(routes!(publish))
        .routes(routes!(withdraw))
        .routes(routes!(delivery))
        .routes(routes!(recipients))
        .routes(routes!(resend))
        .routes(routes!(export))
        .routes(routes!(count_audience))
        .routes(routes!(kinds, add_kind))
        .routes(routes!(templates, create_template))
        .routes(routes!(get_template, update_template))
        .routes(routes!(template_versions))
        .routes(routes!(preview))
        .routes(routes!(channels))
        .routes(routes!(save_channel))
        .routes(routes!(test_channel))
        .routes(routes!(get_settings, save_settings))
        .routes(routes!(get_preferences, save_preferences))
        .routes(routes!(set_account))
        .routes(routes!(timeline))
        .routes(routes!(upload))
        .routes(routes!(download))
        .routes(routes!(inbox))
        .routes(routes!(unread))
        .routes(routes!(stream))
        .routes(routes!(read))
        .routes(routes!(confirm))
        .routes(routes!(read_all))
}

/// Messages, newest first: all of the institution's for readers of all messages, else the caller's own.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, body = Page<Message>), (status = 403, body = Problem)))]
async fn list_messages(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<MessageQuery>,
) -> Result<Json<Page<Message>>> {
    Ok(Json(service::list_messages(&app, &p, &q).await?))
}

/// Write a draft (from content or a template).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = MessageInput,
    responses((status = 201, body = Message), (status = 422, body = Problem)))]
async fn create_message(
    State(app): State<App>,
    Auth(p): Auth,
    Body(input): Body<MessageInput>,
) -> Result<(StatusCode, Json<Message>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_message(&app, &p, &input).await?),
    ))
}

/// One message.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = Message), (status = 404, body = Problem)))]
async fn get_message(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Message>> {
    Ok(Json(service::get_message(&app, &p, id).await?))
}

/// Change a draft.
#[utoipa::path(patch, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = i64, Path)), request_body = MessageInput,
    responses((status = 200, body = Message), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_message(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(input): Body<MessageInput>,
) -> Result<Json<Message>> {
    Ok(Json(service::update_message(&app, &p, id, &input).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    /// Publish even if the audience resolves to nobody.
    allow_empty: Option<bool>,
}

/// Publish a draft now, or schedule it for its `publish_at`.
#[utoipa::path(post, path = "/api/v1/messages/{id}/publish", tag = "messages", params(("id" = i64, Path), PublishQuery),
    responses((status = 200, body = Message), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn publish(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Q(q): Q<PublishQuery>,
) -> Result<Json<Message>> {
    Ok(Json(
        service::publish(&app, &p, id, q.allow_empty.unwrap_or(false)).await?,
    ))
}

/// Withdraw a published or scheduled message; inboxes show it withdrawn and pending deliveries stop.
#[utoipa::path(post, path = "/api/v1/messages/{id}/withdraw", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = Message), (status = 409, body = Problem)))]
async fn withdraw(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Message>> {
    Ok(Json(service::withdraw(&app, &p, id).await?))
}

/// Delivery counts per channel and state, read rate and failures with the provider's error.
#[utoipa::path(get, path = "/api/v1/messages/{id}/delivery", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryReportView), (status = 404, body = Problem)))]
async fn delivery(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<DeliveryReportView>> {
    Ok(Json(service::delivery_report(&app, &p, id).await?))
}

/// Recipients with read time and per-channel delivery state.
#[utoipa::path(get, path = "/api/v1/messages/{id}/recipients", tag = "messages", params(("id" = i64, Path), RecipientQuery),
    responses((status = 200, body = Page<RecipientRow>), (status = 404, body = Problem)))]
async fn recipients(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Q(q): Q<RecipientQuery>,
) -> Result<Json<Page<RecipientRow>>> {
    Ok(Json(service::recipients(&app, &p, id, &q).await?))
}

/// Send again on outside channels to those who have not read it, or whose delivery failed.
#[utoipa::path(post, path = "/api/v1/messages/{id}/resend", tag = "messages", params(("id" = i64, Path)), request_body = ResendRequest,
    responses((status = 200, body = ResendResult), (status = 409, body = Problem)))]
async fn resend(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(req): Body<ResendRequest>,
) -> Result<Json<ResendResult>> {
    Ok(Json(service::resend(&app, &p, id, &req).await?))
}

/// The recipient list with read and delivery state, as XLSX.
#[utoipa::path(get, path = "/api/v1/messages/{id}/export.xlsx", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 404, body = Problem)))]
async fn export(
    State(app): State<App>,
    Auth(p): Auth,
    Path(raw): Path<String>,
) -> Result<Response> {
    let id: i64 = raw
        .parse()
        .map_err(|_| Error::BadRequest(format!("{raw:?} is not a valid id")))?;
    let (name, bytes) = service::export_xlsx(&app, &p, id).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// How many people an audience reaches now, with a sample.
#[utoipa::path(post, path = "/api/v1/audience/count", tag = "messages", request_body = Audience,
    responses((status = 200, body = AudienceCount), (status = 422, body = Problem)))]
async fn count_audience(
    State(app): State<App>,
    Auth(p): Auth,
    Body(a): Body<Audience>,
) -> Result<Json<AudienceCount>> {
    Ok(Json(service::count_audience(&app, &p, &a).await?))
}

/// Message types: built-in and the institution's own.
#[utoipa::path(get, path = "/api/v1/message-types", tag = "messages", responses((status = 200, body = Vec<MessageKind>)))]
async fn kinds(State(app): State<App>, Auth(p): Auth) -> Result<Json<Vec<MessageKind>>> {
    Ok(Json(service::kinds(&app, p.tenant_id).await?))
}

/// Add a message type.
#[utoipa::path(post, path = "/api/v1/message-types", tag = "messages", request_body = NewMessageKind,
    responses((status = 201, body = Vec<MessageKind>), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_kind(
    State(app): State<App>,
    Auth(p): Auth,
    Body(k): Body<NewMessageKind>,
) -> Result<(StatusCode, Json<Vec<MessageKind>>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::add_kind(&app, &p, &k).await?),
    ))
}

/// Templates (current versions).
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", responses((status = 200, body = Vec<Template>)))]
async fn templates(State(app): State<App>, Auth(p): Auth) -> Result<Json<Vec<Template>>> {
    Ok(Json(service::templates(&app, &p).await?))
}

/// Create a template; syntax errors and unknown variables are refused with their line.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = TemplateInput,
    responses((status = 201, body = Template), (status = 422, body = Problem)))]
async fn create_template(
    State(app): State<App>,
    Auth(p): Auth,
    Body(t): Body<TemplateInput>,
) -> Result<(StatusCode, Json<Template>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::save_template(&app, &p, None, &t).await?),
    ))
}

/// One template.
#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = i64, Path)),
    responses((status = 200, body = Template), (status = 404, body = Problem)))]
async fn get_template(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<Template>> {
    Ok(Json(service::get_template(&app, &p, id).await?))
}

/// Save a new version of a template.
#[utoipa::path(put, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = i64, Path)), request_body = TemplateInput,
    responses((status = 200, body = Template), (status = 422, body = Problem)))]
async fn update_template(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
    Body(t): Body<TemplateInput>,
) -> Result<Json<Template>> {
    Ok(Json(service::save_template(&app, &p, Some(id), &t).await?))
}

/// Every saved version of a template, newest first.
#[utoipa::path(get, path = "/api/v1/templates/{id}/versions", tag = "templates", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<TemplateVersionInfo>)))]
async fn template_versions(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Vec<TemplateVersionInfo>>> {
    Ok(Json(service::template_versions(&app, &p, id).await?))
}

/// Render a template (or unsaved sources) for one recipient.
#[utoipa::path(post, path = "/api/v1/templates/preview", tag = "templates", request_body = PreviewRequest,
    responses((status = 200, body = Rendered), (status = 422, body = Problem)))]
async fn preview(
    State(app): State<App>,
    Auth(p): Auth,
    Body(r): Body<PreviewRequest>,
) -> Result<Json<Rendered>> {
    Ok(Json(service::preview(&app, &p, &r).await?))
}

/// Channel settings (credentials masked).
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", responses((status = 200, body = Vec<ChannelSetting>)))]
async fn channels(State(app): State<App>, Auth(p): Auth) -> Result<Json<Vec<ChannelSetting>>> {
    Ok(Json(service::channel_settings(&app, &p).await?))
}

/// Set a channel's provider and credentials (encrypted at rest).
#[utoipa::path(put, path = "/api/v1/channels/{channel}", tag = "channels", params(("channel" = String, Path)), request_body = ChannelSettingInput,
    responses((status = 200, body = ChannelSetting), (status = 422, body = Problem)))]
async fn save_channel(
    State(app): State<App>,
    Auth(p): Auth,
    Path(channel): Path<String>,
    Body(i): Body<ChannelSettingInput>,
) -> Result<Json<ChannelSetting>> {
    Ok(Json(service::save_channel(&app, &p, &channel, &i).await?))
}

/// Send a test message through a channel; the answer says what the provider said.
#[utoipa::path(post, path = "/api/v1/channels/{channel}/test", tag = "channels", params(("channel" = String, Path)), request_body = TestSendRequest,
    responses((status = 200, body = TestSendResult), (status = 404, body = Problem)))]
async fn test_channel(
    State(app): State<App>,
    Auth(p): Auth,
    Path(channel): Path<String>,
    Body(r): Body<TestSendRequest>,
) -> Result<Json<TestSendResult>> {
    Ok(Json(service::test_send(&app, &p, &channel, &r).await?))
}

/// The institution's messaging settings: quiet hours, fallbacks, urgent SMS, attachment size.
#[utoipa::path(get, path = "/api/v1/messaging/settings", tag = "channels", responses((status = 200, body = MessagingSettings)))]
async fn get_settings(State(app): State<App>, Auth(p): Auth) -> Result<Json<MessagingSettings>> {
    Ok(Json(service::settings(&app, &p).await?))
}

/// Change the institution's messaging settings.
#[utoipa::path(put, path = "/api/v1/messaging/settings", tag = "channels", request_body = MessagingSettings,
    responses((status = 200, body = MessagingSettings), (status = 422, body = Problem)))]
async fn save_settings(
    State(app): State<App>,
    Auth(p): Auth,
    Body(s): Body<MessagingSettings>,
) -> Result<Json<MessagingSettings>> {
    Ok(Json(service::save_settings(&app, &p, &s).await?))
}

/// The caller's message preferences.
#[utoipa::path(get, path = "/api/v1/me/preferences", tag = "inbox", responses((status = 200, body = Preferences)))]
async fn get_preferences(State(app): State<App>, Auth(p): Auth) -> Result<Json<Preferences>> {
    Ok(Json(service::preferences(&app, &p).await?))
}

/// Change the caller's channels per message type and quiet hours.
#[utoipa::path(put, path = "/api/v1/me/preferences", tag = "inbox", request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = Problem)))]
async fn save_preferences(
    State(app): State<App>,
    Auth(p): Auth,
    Body(prefs): Body<Preferences>,
) -> Result<Json<Preferences>> {
    Ok(Json(service::save_preferences(&app, &p, &prefs).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountInput {
    /// The person's user id on the platform; empty to remove.
    address: Option<String>,
}

/// Link a person to their WeCom, DingTalk or Feishu account.
#[utoipa::path(put, path = "/api/v1/people/{id}/accounts/{channel}", tag = "channels",
    params(("id" = i64, Path), ("channel" = String, Path)), request_body = AccountInput,
    responses((status = 204), (status = 404, body = Problem)))]
async fn set_account(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, channel)): Path<(String, String)>,
    Body(a): Body<AccountInput>,
) -> Result<StatusCode> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::BadRequest(format!("{id:?} is not a valid id")))?;
    service::set_channel_account(&app, &p, id, &channel, a.address.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One person's messages and deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/people/{id}/message-timeline", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<TimelineEvent>)))]
async fn timeline(
    State(app): State<App>,
    Auth(p): Auth,
    Id(id): Id,
) -> Result<Json<Vec<TimelineEvent>>> {
    Ok(Json(service::timeline(&app, &p, id).await?))
}

/// Upload an attachment (multipart field `file`); attach it by id when writing the message.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "messages",
    responses((status = 201, body = AttachmentInfo), (status = 413, body = Problem)))]
async fn upload(
    State(app): State<App>,
    Auth(p): Auth,
    mut mp: Multipart,
) -> Result<(StatusCode, Json<AttachmentInfo>)> {
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| Error::BadRequest(format!("bad multipart body: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("attachment").to_string();
        let ct = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::TooLarge(format!("the attachment is too large: {e}"))
            } else {
                Error::BadRequest(format!("cannot read the file: {e}"))
            }
        })?;
        let info = service::upload_attachment(&app, &p, &name, &ct, bytes.to_vec()).await?;
        return Ok((StatusCode::CREATED, Json(info)));
    }
    Err(Error::validation("file", "no file field in the form"))
}

/// Download an attachment.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = Problem)))]
async fn download(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Response> {
    let (info, data) = service::download_attachment(&app, &p, id).await?;
    let encoded: String = url_escape(&info.filename);
    Ok((
        [
            (header::CONTENT_TYPE, info.content_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename*=UTF-8''{encoded}"),
            ),
        ],
        data,
    )
        .into_response())
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The caller's inbox, newest first.
#[utoipa::path(get, path = "/api/v1/inbox", tag = "inbox", params(InboxQuery), responses((status = 200, body = Page<InboxItem>)))]
async fn inbox(
    State(app): State<App>,
    Auth(p): Auth,
    Q(q): Q<InboxQuery>,
) -> Result<Json<Page<InboxItem>>> {
    Ok(Json(service::inbox(&app, &p, &q).await?))
}

/// The caller's unread count.
#[utoipa::path(get, path = "/api/v1/inbox/unread", tag = "inbox", responses((status = 200, body = UnreadCount)))]
async fn unread(State(app): State<App>, Auth(p): Auth) -> Result<Json<UnreadCount>> {
    Ok(Json(service::unread(&app, p.tenant_id, p.person_id).await?))
}

/// Live updates (server-sent events): an `unread` event with the count now
/// and whenever a new message arrives.
#[utoipa::path(get, path = "/api/v1/inbox/stream", tag = "inbox", responses((status = 200, content_type = "text/event-stream")))]
async fn stream(State(app): State<App>, Auth(p): Auth) -> Result<Response> {
    let mut rx = app.messaging.live.subscribe();
    let me = (p.tenant_id, p.person_id);
    let stop = app.messaging.stopping.clone();
    let first = service::unread(&app, p.tenant_id, p.person_id).await?;
    let events = async_stream(move |tx| async move {
        let event = |u: crate::messaging::model::UnreadCount| {
            Event::default().event("unread").json_data(u).ok()
        };
        if let Some(e) = event(first) {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                got = rx.recv() => match got {
                    Ok(batch) if !batch.contains(&me) => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let Ok(u) = service::unread(&app, me.0, me.1).await else { continue };
                        if let Some(e) = event(u) {
                            if tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                },
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A stream fed by a task, ending when the task ends.
fn async_stream<F, Fut>(
    f: F,
) -> impl futures::Stream<Item = std::result::Result<Event, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// Mark an inbox entry read.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/read", tag = "inbox", params(("id" = i64, Path)),
    responses((status = 200, body = InboxItem), (status = 404, body = Problem)))]
async fn read(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<InboxItem>> {
    Ok(Json(service::mark(&app, &p, id, false).await?))
}

/// Confirm an inbox entry (for messages that ask for confirmation); also marks it read.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/confirm", tag = "inbox", params(("id" = i64, Path)),
    responses((status = 200, body = InboxItem), (status = 404, body = Problem)))]
async fn confirm(State(app): State<App>, Auth(p): Auth, Id(id): Id) -> Result<Json<InboxItem>> {
    Ok(Json(service::mark(&app, &p, id, true).await?))
}

/// Mark everything read.
#[utoipa::path(post, path = "/api/v1/inbox/read-all", tag = "inbox", responses((status = 200, body = UnreadCount)))]
async fn read_all(State(app): State<App>, Auth(p): Auth) -> Result<Json<UnreadCount>> {
    Ok(Json(service::mark_all_read(&app, &p).await?))
}
