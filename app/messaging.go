package app

// Channel is how a text message travels.
type Channel string

// Channels.
const (
	ChannelSMS      Channel = "sms"
	ChannelWhatsApp Channel = "whatsapp"
)

// Message is one outgoing text message. To and From are E.164 numbers,
// without the "whatsapp:" prefix. An empty From means the org's PhoneNumber
// for SMS and its WhatsAppNumber for WhatsApp; an empty Channel means SMS.
type Message struct {
	To, From, Body string
	Channel        Channel
}
