"""Operators' screens. Every rule is the services' (clients, realms, accounts, sessions):
forms translate their ``InvalidInput`` into form errors, actions call them after a confirmation.
Whatever any admin screen changes is on the audit trail as done by the operator signed in
(``record_operators``)."""

import functools

import segno
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import accounts, audit, clients, mfa, realms, sessions
from .exceptions import InvalidInput
from .models import LIFETIME_FIELDS, ClientPolicy, Realm, RealmAccount, SecurityEvent, Session, SessionCutoff


def confirm_first(*, title, question, details=None):
    """Wrap an admin action so it runs only after a confirmation page, as delete_selected does.
    ``details(queryset)`` lists what the action will touch."""

    def decorate(action):
        def confirmed(modeladmin, request, queryset):
            if request.POST.get("confirmed") == "yes":
                return action(modeladmin, request, queryset)
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "question": question,
                "objects": queryset,
                "details": details(queryset) if details else None,
                "action": action.__name__,
                "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
                # "Select all N" across pages: carried through, or only this page's rows would be acted on.
                "select_across": request.POST.get("select_across", "0"),
                "opts": modeladmin.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "ropc_provider/admin/confirm_action.html", context)

        confirmed.__name__ = action.__name__
        confirmed.short_description = getattr(action, "short_description", title)
        confirmed.allowed_permissions = ("change",)
        return confirmed

    return decorate


def record_operators(site):
    """Run every view of ``site`` with the operator signed in as the audit trail's ``actor``:
    ours (lists, actions, forms, our own pages) and other apps' too, for Django's user screens move
    the session cutoff. The app does it for ``admin.site`` when it is ready; call it for a site of
    your own. Wrapping ``admin_view`` catches every view, since the admin routes them all through it."""
    if getattr(site, "records_operators", False):
        return
    admin_view = site.admin_view

    def admin_view_as_operator(view, cacheable=False):
        @functools.wraps(view)  # keeps what the admin reads off the view (csrf flags)
        def view_as_operator(request, *args, **kwargs):
            with audit.context(actor=request.user.get_username() or None):
                return view(request, *args, **kwargs)

        return admin_view(view_as_operator, cacheable)

    site.admin_view = admin_view_as_operator
    site.records_operators = True


def _form_error(form, error):
    form.add_error(None, ValidationError(str(error)))


# -- password-grant clients ------------------------------------------------------------------------


class ClientForm(forms.ModelForm):
    name = forms.CharField(max_length=255)
    client_type = forms.ChoiceField(
        choices=[("public", "Public (native or browser app, no secret)"), ("confidential", "Confidential (server)")],
        widget=forms.RadioSelect,
        initial="public",
    )
    scopes = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every scope the project defines.",
    )

    class Meta:
        model = ClientPolicy
        fields = [
            "realms",
            "default_realm",
            "access_token_lifetime",
            "refresh_token_lifetime",
            "issue_refresh_tokens",
            "refresh_grace_seconds",
            "session_max_lifetime",
            "session_idle_timeout",
            "may_forward_user_ip",
        ]
        widgets = {"realms": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, scope) for scope in sorted(clients.known_scopes())]
        self.fields["realms"].help_text = "None ticked: the project's own users."
        self.fields["refresh_grace_seconds"].required = False
        for lifetime in LIFETIME_FIELDS:
            self.fields[lifetime].widget.attrs["min"] = 1  # a hint; the rule is the model's and the service's
        if self.instance.pk:
            self.fields["name"].initial = self.instance.application.name
            self.fields["client_type"].initial = self.instance.application.client_type
            self.fields["client_type"].disabled = True
            self.fields["scopes"].initial = self.instance.scope_list

    def clean_refresh_grace_seconds(self):
        return self.cleaned_data.get("refresh_grace_seconds") or 0

    def clean(self):
        data = super().clean()
        try:
            clients.check_policy(
                confidential=data.get("client_type") == "confidential",
                may_forward_user_ip=data.get("may_forward_user_ip", False),
            )
            data["realms"], data["default_realm"] = clients.realms_of(
                data.get("realms") or [], data.get("default_realm")
            )
        except InvalidInput as error:
            _form_error(self, error)
        return data


@admin.register(ClientPolicy)
class ClientAdmin(admin.ModelAdmin):
    form = ClientForm
    list_display = [
        "name",
        "client_id",
        "client_type",
        "realm_list",
        "default_realm",
        "active_tokens",
        "is_active",
        "created",
    ]
    list_filter = ["is_active", "application__client_type", "realms"]
    search_fields = ["application__name", "application__client_id"]
    readonly_fields = ["client_id", "live_sessions"]
    actions = ["rotate_secret", "revoke_tokens", "deactivate"]

    def get_fieldsets(self, request, obj=None):
        main = ["name", "client_type"] + (["client_id"] if obj else [])
        return [
            (None, {"fields": main}),
            ("Sign-in", {"fields": ["realms", "default_realm", "scopes"]}),
            (
                "Tokens",
                {
                    "fields": [
                        "access_token_lifetime",
                        "refresh_token_lifetime",
                        "issue_refresh_tokens",
                        "refresh_grace_seconds",
                    ]
                },
            ),
            (
                "Sessions",
                {"fields": (["live_sessions"] if obj else []) + ["session_max_lifetime", "session_idle_timeout"]},
            ),
            ("Attack protection", {"fields": ["may_forward_user_ip"]}),
        ]

    def get_queryset(self, request):
        live = Q(application__accesstoken__expires__gt=timezone.now())
        return (
            super()
            .get_queryset(request)
            .select_related("application", "default_realm")
            .prefetch_related("realms")
            .annotate(live_tokens=Count("application__accesstoken", filter=live, distinct=True))
        )

    @admin.display(ordering="application__name")
    def name(self, policy):
        return policy.application.name

    @admin.display(description="client_id")
    def client_id(self, policy):
        return policy.application.client_id

    @admin.display(description="type", ordering="application__client_type")
    def client_type(self, policy):
        return policy.application.client_type

    @admin.display(description="realms")
    def realm_list(self, policy):
        return ", ".join(realm.slug for realm in policy.realms.all())

    @admin.display(description="active tokens", ordering="live_tokens")
    def active_tokens(self, policy):
        return policy.live_tokens

    @admin.display(ordering="application__created")
    def created(self, policy):
        return policy.application.created

    @admin.display(description="live sessions")
    def live_sessions(self, policy):
        # The change page only: it counts with the client's own lifetimes, a query per client,
        # which as a list column would be a query per row.
        return sessions.live_session_count(policy.application)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            clients.update_client(
                obj,
                name=data["name"],
                scopes=data["scopes"],
                realms=data["realms"],
                default_realm=data["default_realm"],
                access_token_lifetime=data["access_token_lifetime"],
                refresh_token_lifetime=data["refresh_token_lifetime"],
                issue_refresh_tokens=data["issue_refresh_tokens"],
                refresh_grace_seconds=data["refresh_grace_seconds"],
                may_forward_user_ip=data["may_forward_user_ip"],
                session_max_lifetime=data["session_max_lifetime"],
                session_idle_timeout=data["session_idle_timeout"],
            )
            return
        registered = clients.register_client(
            name=data["name"],
            confidential=data["client_type"] == "confidential",
            scopes=data["scopes"],
            issue_refresh_tokens=data["issue_refresh_tokens"],
            access_token_lifetime=data["access_token_lifetime"],
            refresh_token_lifetime=data["refresh_token_lifetime"],
            realms=[realm.slug for realm in data["realms"]],
            default_realm=data["default_realm"].slug if data["default_realm"] else None,
            may_forward_user_ip=data["may_forward_user_ip"],
            refresh_grace_seconds=data["refresh_grace_seconds"] or 0,
            session_max_lifetime=data["session_max_lifetime"],
            session_idle_timeout=data["session_idle_timeout"],
        )
        policy = registered.application.ropc_policy
        obj.pk, obj.application, obj._state.adding = policy.pk, registered.application, False
        # Shown once by response_add, never stored anywhere else (not in messages or the session).
        request._ropc_new_secret = registered.client_secret

    def save_related(self, request, form, formsets, change):
        pass  # the realms are the service's to write (register_client, update_client)

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, getattr(request, "_ropc_new_secret", None), created=True)

    def _secret_page(self, request, policy, secret, *, created):
        context = {
            **self.admin_site.each_context(request),
            "title": "Client registered" if created else "New secret",
            "policy": policy,
            "application": policy.application,
            "secret": secret,
            "created": created,
            "opts": self.model._meta,
            "list_url": reverse("admin:ropc_provider_clientpolicy_changelist"),
        }
        response = TemplateResponse(request, "ropc_provider/admin/client_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Rotate secret (shows the new one once)", permissions=["change"])
    @confirm_first(title="Rotate secret", question="The client's current secret stops working at once.")
    def rotate_secret(self, request, queryset):
        policies = list(queryset.select_related("application"))
        if len(policies) != 1 or not clients.is_confidential(policies[0].application):
            self.message_user(request, "Select exactly one confidential client.", messages.ERROR)
            return None
        secret = clients.rotate_secret(policies[0].application)
        self.log_change(request, policies[0], "Rotated the secret.")
        return self._secret_page(request, policies[0], secret, created=False)

    @admin.action(description="Revoke all tokens", permissions=["change"])
    @confirm_first(
        title="Revoke all tokens",
        question="Every user signed in through these clients must sign in again.",
        details=lambda qs: [
            f"{policy.application.name}: {sessions.live_token_count(application=policy.application)} live tokens"
            for policy in qs
        ],
    )
    def revoke_tokens(self, request, queryset):
        for policy in queryset:
            sessions.revoke_client_tokens(policy.application)
        self.message_user(request, f"Revoked the tokens of {queryset.count()} client(s).")

    @admin.action(description="Deactivate", permissions=["change"])
    @confirm_first(
        title="Deactivate clients",
        question="They can no longer authenticate, and their tokens are revoked.",
    )
    def deactivate(self, request, queryset):
        for policy in queryset:
            clients.set_active(policy, False)
        self.message_user(request, f"Deactivated {queryset.count()} client(s).")


# -- realms --------------------------------------------------------------------------------------


class RealmForm(forms.ModelForm):
    class Meta:
        model = Realm
        fields = ["slug", "name", "source", "allow_email_login", "mfa", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            self.fields["source"].disabled = True
            if not self.instance.is_directory:
                self.fields["mfa"].disabled = True
            if self.instance.is_active:
                # Deactivating ends every session in the realm: only the "Deactivate" action does
                # it, after showing what it ends. Reactivating here is harmless.
                self.fields["is_active"].disabled = True
                self.fields[
                    "is_active"
                ].help_text = "To deactivate, use the list's “Deactivate” action: it shows what ends first."

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            try:
                realms.check_email_login(self.instance, data.get("allow_email_login", False))
            except InvalidInput as error:
                _form_error(self, error)
        elif data.get("slug") and data.get("source"):
            try:
                realms.check_new_realm(
                    slug=data["slug"],
                    source=data["source"],
                    allow_email_login=data.get("allow_email_login"),
                    mfa=data.get("mfa") or Realm.MFA_ENROLLED,
                )
            except InvalidInput as error:
                _form_error(self, error)
        return data


def _realm_impact(queryset):
    lines = []
    for realm in queryset:
        users = realms.realm_users(realm)
        lines.append(f"{realm.slug}: {users.count()} accounts, {sessions.live_token_count(user__in=users)} live tokens")
    return lines


@admin.register(Realm)
class RealmAdmin(admin.ModelAdmin):
    form = RealmForm
    list_display = ["slug", "name", "source", "account_count", "allow_email_login", "mfa", "is_active"]
    list_filter = ["source", "is_active"]
    search_fields = ["slug", "name"]
    actions = ["deactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(accounts_total=Count("accounts"))

    @admin.display(description="accounts", ordering="accounts_total")
    def account_count(self, realm):
        return realm.accounts_total

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)  # deactivation ends sessions (receivers.py)
            return
        realm = realms.create_realm(
            slug=obj.slug,
            name=obj.name,
            source=obj.source,
            allow_email_login=obj.allow_email_login,
            is_active=obj.is_active,
            mfa=obj.mfa,
        )
        obj.pk, obj._state.adding = realm.pk, False

    @admin.action(description="Deactivate", permissions=["change"])
    @confirm_first(
        title="Deactivate realms",
        question="Nobody can sign in to them, and every session in them ends now.",
        details=_realm_impact,
    )
    def deactivate(self, request, queryset):
        for realm in queryset:
            realms.set_realm_active(realm, False)
        self.message_user(request, f"Deactivated {queryset.count()} realm(s).")


# -- realm accounts ------------------------------------------------------------------------------

MFA_ACTIONS = {
    "enroll": (
        "Enrol an authenticator",
        "The authenticator is active at once: {name} needs a code from it at the next sign-in. "
        "The next page shows its secret and recovery codes, once.",
    ),
    "recovery_codes": (
        "New recovery codes",
        "The old recovery codes of {name} stop working, and every session of {name} ends now. "
        "The next page shows the new codes, once.",
    ),
    "remove": (
        "Remove the authenticator",
        "{name} signs in with the password alone again (unless the realm requires a second factor), "
        "and every session of {name} ends now.",
    ),
}


def _qr_svg(uri):
    # Inline SVG: nothing to serve, nothing cached; the secret never leaves this page.
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")


class AccountCreationForm(forms.ModelForm):
    email = forms.EmailField(required=False)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    class Meta:
        model = RealmAccount
        fields = ["realm", "login_name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["realm"].queryset = Realm.objects.filter(source=Realm.DIRECTORY)

    def clean(self):
        data = super().clean()
        if data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        elif data.get("realm") and data.get("login_name") and data.get("password1"):
            try:
                accounts.check_new_account(
                    data["realm"], data["login_name"], data["password1"], email=data.get("email") or None
                )
            except InvalidInput as error:
                _form_error(self, error)
        return data

    def _post_clean(self):
        # The service decides (in clean) what makes an account valid, normalised names included.
        pass


@admin.register(RealmAccount)
class RealmAccountAdmin(admin.ModelAdmin):
    # The account's live sessions, each with its "End session", below the fields.
    change_form_template = "ropc_provider/admin/account_change_form.html"
    list_display = ["login_name", "realm", "is_active", "last_login"]
    list_filter = ["realm", "user__is_active"]
    search_fields = ["login_name", "login_key"]
    list_select_related = ["realm", "user"]
    actions = ["sign_out_everywhere", "unlock", "deactivate"]
    readonly_fields = [
        "realm",
        "login_name",
        "email",
        "is_active",
        "last_login",
        "sessions_valid_from",
        "lockout",
        "password_link",
        "second_factor",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AccountCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["realm", "login_name", "email", "password1", "password2"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    @admin.display(boolean=True, ordering="user__is_active")
    def is_active(self, account):
        return account.user.is_active

    @admin.display(description="last sign-in", ordering="user__last_login")
    def last_login(self, account):
        return account.user.last_login

    def email(self, account):
        return getattr(account.user, account.user.get_email_field_name(), "")

    @admin.display(description="refresh tokens valid from")
    def sessions_valid_from(self, account):
        try:
            cutoff = account.user.session_cutoff
        except SessionCutoff.DoesNotExist:
            return "—"
        return f"{cutoff.refresh_tokens_valid_from:%Y-%m-%d %H:%M:%S %Z} ({cutoff.get_reason_display()})"

    @admin.display(description="lockout")
    def lockout(self, account):
        state = accounts.lock_state(account.realm, account=account)
        if state["locked_until"]:
            return f"locked for {max(0, int(state['locked_until'] - timezone.now().timestamp()))} s more"
        return f"not locked ({state['failures']} recent failures)"

    @admin.display(description="password")
    def password_link(self, account):
        url = reverse("admin:ropc_provider_realmaccount_password", args=[account.pk])
        return format_html('<a href="{}">Change the password</a> (ends every session)', url)

    @admin.display(description="two-step sign-in")
    def second_factor(self, account):
        state = mfa.status(account.user)
        links = [
            (f"ropc_provider_realmaccount_mfa_{action}", label)
            for action, label in (
                [("recovery_codes", "New recovery codes"), ("remove", "Remove the authenticator")]
                if state["totp"]
                else [("enroll", "Enrol an authenticator")]
            )
        ]
        if state["totp"]:
            summary = f"authenticator active; {state['recovery_codes_left']} recovery codes left"
        else:
            summary = f"no authenticator (realm policy: {mfa.policy_of(account.realm)})"
        parts = [
            format_html(
                '<a href="{}" class="ropc-mfa-{}">{}</a>',
                reverse(f"admin:{name}", args=[account.pk]),
                name.rsplit("_", 1)[-1],
                label,
            )
            for name, label in links
        ]
        return format_html("{} — {}", summary, format_html_join(" · ", "{}", ((part,) for part in parts)))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["live_sessions"] = sessions.live_sessions(obj.user)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        account = accounts.create_account(
            data["realm"], data["login_name"], data["password1"], email=data.get("email") or None
        )
        obj.pk, obj.user, obj.login_key, obj._state.adding = account.pk, account.user, account.login_key, False

    def get_urls(self):
        return [
            path(
                "<int:account_id>/password/",
                self.admin_site.admin_view(self.change_password),
                name="ropc_provider_realmaccount_password",
            ),
            *[
                path(
                    f"<int:account_id>/mfa/{action.replace('_', '-')}/",
                    self.admin_site.admin_view(self.second_factor_action),
                    {"action": action},
                    name=f"ropc_provider_realmaccount_mfa_{action}",
                )
                for action in MFA_ACTIONS
            ],
            path(
                "<int:account_id>/sessions/<str:session_id>/end/",
                self.admin_site.admin_view(self.end_session),
                name="ropc_provider_realmaccount_end_session",
            ),
            *super().get_urls(),
        ]

    def change_password(self, request, account_id):
        account = get_object_or_404(RealmAccount.objects.select_related("user", "realm"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = AdminPasswordChangeForm(account.user, request.POST or None)
        if request.method == "POST" and form.is_valid():
            form.save()  # set_password + save: the cutoff moves (receivers.py)
            self.log_change(request, account, "Changed the password.")
            self.message_user(request, f"Password of {account.login_name} changed; its sessions ended.")
            return self.response_post_save_change(request, account)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change the password of {account.login_name} ({account.realm.slug})",
            "form": form,
            "account": account,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "ropc_provider/admin/account_password.html", context)

    def second_factor_action(self, request, account_id, action):
        """Enrol, new recovery codes, remove: each after a confirmation, as the list's actions are;
        what enrolment and new codes produce is shown on the page that answers, once."""
        account = get_object_or_404(RealmAccount.objects.select_related("user", "realm"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        title, question = MFA_ACTIONS[action]
        account_url = reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title}: {account.login_name} ({account.realm.slug})",
            "question": question.format(name=account.login_name),
            "account": account,
            "account_url": account_url,
            "opts": self.model._meta,
            "done": False,
        }
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            try:
                if action == "enroll":
                    enrolment = mfa.enroll(account.user)
                    context.update(
                        secret=enrolment.secret,
                        qr_svg=_qr_svg(enrolment.provisioning_uri),
                        recovery_codes=enrolment.recovery_codes,
                    )
                elif action == "recovery_codes":
                    context["recovery_codes"] = mfa.regenerate_recovery_codes(account.user)
                else:
                    mfa.remove(account.user)
            except InvalidInput as error:
                self.message_user(request, str(error), messages.ERROR)
                return HttpResponseRedirect(account_url)
            self.log_change(request, account, f"{title}.")
            if action == "remove":
                self.message_user(request, f"Removed the authenticator of {account.login_name}; its sessions ended.")
                return HttpResponseRedirect(account_url)
            context["done"] = True
        response = TemplateResponse(request, "ropc_provider/admin/account_mfa.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def end_session(self, request, account_id, session_id):
        """End one session of the account, after a confirmation: its tokens stop working, the
        account's other sessions go on."""
        account = get_object_or_404(RealmAccount.objects.select_related("user", "realm"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        # Another account's session, an unknown or malformed id: all the same "no such session".
        session = sessions.own_session(account.user, session_id)
        if session is None:
            raise Http404("No such session of this account.")
        account_url = reverse("admin:ropc_provider_realmaccount_change", args=[account.pk])
        client = session.application.name
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            if sessions.end_session(session, reason=Session.OPERATOR):
                self.log_change(request, account, f"Ended the session {session.pk} on {client}.")
                self.message_user(request, f"Ended the session of {account.login_name} on {client}.")
            else:
                self.message_user(request, "That session had ended already.", messages.WARNING)
            return HttpResponseRedirect(account_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"End a session of {account.login_name} ({account.realm.slug})",
            "question": f"{account.login_name} is signed out of {client} now: this session's tokens stop "
            "working at once. The account's other sessions go on.",
            "account": account,
            "session": session,
            "account_url": account_url,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "ropc_provider/admin/account_session_end.html", context)

    @admin.action(description="Sign out everywhere", permissions=["change"])
    @confirm_first(title="Sign out everywhere", question="Their refresh and access tokens stop working now.")
    def sign_out_everywhere(self, request, queryset):
        for account in queryset.select_related("user"):
            sessions.revoke_sessions(account.user, reason=SessionCutoff.OPERATOR)
        self.message_user(request, f"Signed out {queryset.count()} account(s) everywhere.")

    @admin.action(description="Unlock", permissions=["change"])
    @confirm_first(title="Unlock", question="Their lockout is lifted and their failures forgotten.")
    def unlock(self, request, queryset):
        for account in queryset.select_related("realm"):
            accounts.unlock(account.realm, account=account)
        self.message_user(request, f"Unlocked {queryset.count()} account(s).")

    @admin.action(description="Deactivate", permissions=["change"])
    @confirm_first(title="Deactivate accounts", question="They can no longer sign in; their sessions end now.")
    def deactivate(self, request, queryset):
        for account in queryset.select_related("user"):
            accounts.set_account_active(account, False)
        self.message_user(request, f"Deactivated {queryset.count()} account(s).")


# -- the audit trail -----------------------------------------------------------------------------


class EventClientFilter(admin.SimpleListFilter):
    """The trail keeps plain values, not foreign keys; the choices come from the clients registered
    (a short table), never from the trail itself (a scan of a long one on every page)."""

    title = "client"
    parameter_name = "client_id"

    def lookups(self, request, model_admin):
        named = ClientPolicy.objects.values_list("application__client_id", "application__name")
        return [(client_id, f"{name} ({client_id})") for client_id, name in named.order_by("application__name")]

    def queryset(self, request, queryset):
        return queryset.filter(client_id=self.value()) if self.value() else queryset


class EventRealmFilter(admin.SimpleListFilter):
    """As ``EventClientFilter``: the realms, from the realms' table."""

    title = "realm"
    parameter_name = "realm"

    def lookups(self, request, model_admin):
        return [(slug, slug) for slug in Realm.objects.values_list("slug", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(realm=self.value()) if self.value() else queryset


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: nobody adds, edits or deletes an event here (``ropc_audit purge``
    keeps the retention). An event holds no secret by design, so every field may show."""

    list_display = [
        "time",
        "type",
        "reason",
        "realm",
        "login_name",
        "client_name",
        "ip_address",
        "session_id",
        "actor",
    ]
    # The date filter's choices (today, past 7 days, this month, this year) cost no query; a date
    # hierarchy would ask the whole trail for its distinct dates.
    list_filter = ["type", EventRealmFilter, EventClientFilter, "time"]
    search_fields = ["^login_name", "^ip_address"]
    search_help_text = "A login name or an IP address, or how either begins."
    # The trail grows large: no count of the whole table on every filtered page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
